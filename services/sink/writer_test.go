package sink_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/sink"
)

func TestWriterTables(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	st := newStage(t, conn, sink.Config{Registerer: reg})
	ev0, ev1 := event(0), event(1)
	ev1.HDOP, ev1.SpeedLimitKmh, ev1.FuelPct, ev1.BatteryV, ev1.CoolantC = 0, 0, -1, 0, -273 // not reported
	at := base.Add(26 * time.Hour)
	recs := []pipelines.Record{
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 0, Value: encodeEvent(t, ev0)},
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 1, Value: encodeEvent(t, ev1)},
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 2, Key: []byte("v-x"), Value: []byte("not avro")},
		{Topic: pipelines.TopicTelemetryClean, Partition: 3, Offset: 0, Value: encodeEvent(t, event(2))},
		{Topic: pipelines.TopicScores, Offset: 0, Value: encode(t, score("v-000", "2026-11-20", 120, "teleport"))},
		{Topic: pipelines.TopicScores, Offset: 1, Value: encode(t, &avro.Watermark{Task: 0, Tasks: 8, ClosedThroughMs: at})},
		{Topic: pipelines.TopicLedgerEntries, Offset: 0, Value: encode(t, entry(0, avro.EntryKindCredit, "v-000/2026-11-20", "v-000", "", 120, at))},
		{Topic: pipelines.TopicLedgerEntries, Offset: 1, Value: encode(t, entry(1, avro.EntryKindDebit, "r-1", "", "alice", -50, at))},
		{Topic: pipelines.TopicLedgerEntries, Offset: 2, Value: encode(t, transferEntry(2, "t-1", "alice", "bob", -20, at))},
		{Topic: pipelines.TopicLedgerEntries, Offset: 3, Key: pipelines.PartnerCheckpointKey(3), // the publisher's checkpoint record: no row, no reject
			Value: []byte("minecart/ledger\n3\nroot\n\n— minecart/ledger sig\n"), Headers: pipelines.PartnerCheckpointHeaders(3)},
		{Topic: pipelines.TopicRedemptionStatus, Offset: 0, Value: encode(t, redemption("r-1", avro.RedemptionStatusConfirmed, 50, at, 1))},
		{Topic: "minecart.unknown", Offset: 0, Value: []byte{1}},
	}
	var rejected []pipelines.Rejected
	for round := 0; round < 2; round++ {
		rj, err := st.Write(ctx, recs)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		rejected = append(rejected, rj...)
	}
	// Each bad record is rejected on each delivery, with its reason.
	codes := map[string]int{}
	for _, rj := range rejected {
		codes[rj.Code]++
	}
	if len(rejected) != 4 || codes[sink.CodeDecode] != 2 || codes[sink.CodeUnknownTopic] != 2 {
		t.Errorf("%d rejected, codes %v", len(rejected), codes)
	}
	for name, want := range map[string]float64{
		"minecart_sink_skipped_total":                             8, // on the second round: the stored records
		"minecart_sink_inserted_rows_total{table=telemetry}":      3,
		"minecart_sink_inserted_rows_total{table=ledger_entries}": 3,
	} {
		if got := gathered(t, reg)[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	for q, want := range map[string]uint64{
		"SELECT count() FROM telemetry": 3,
		"SELECT countIf(hdop IS NULL AND speed_limit_kmh IS NULL AND fuel_pct IS NULL AND battery_v IS NULL AND coolant_c IS NULL) FROM telemetry": 1,
		"SELECT countIf(has(fault_codes, 'P0301')) FROM telemetry":                                                                                 3,
		"SELECT sum(odometer_m) FROM telemetry":                                                                                                    30_000_000,
		"SELECT count() FROM daily_scores WHERE has(flags, 'teleport')":                                                                            1,
		"SELECT toUInt64(sum(delta) + 1000) FROM ledger_entries":                                                                                   1050,
		"SELECT count() FROM ledger_entries WHERE date IS NULL":                                                                                    2,
		"SELECT countIf(counter_account = 'bob' AND account = 'alice' AND kind = 'transfer') FROM ledger_entries":                                  1,
		"SELECT countIf(counter_account = '') FROM ledger_entries":                                                                                 2,
		"SELECT sum(debit_leaf_index) FROM redemptions WHERE status = 'CONFIRMED'":                                                                 1,
		"SELECT sum(events) FROM telemetry_hourly":                                                                                                 3,
		"SELECT toUInt64(sum(points)) FROM points_daily WHERE kind = 'credit'":                                                                     120,
		"SELECT toUInt64(max(max_offset)) FROM sink_offsets WHERE topic = 'minecart.telemetry.clean' AND partition = 0":                            1,
	} {
		var n uint64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil || n != want {
			t.Errorf("%s = %d (%v), want %d", q, n, err, want)
		}
	}
	var tm time.Time
	var lat float64
	if err := conn.QueryRow(ctx, "SELECT time, lat FROM telemetry WHERE event_id = 'e-0'").Scan(&tm, &lat); err != nil ||
		!tm.Equal(time.UnixMilli(ev0.TimeMs)) || lat != ev0.Lat {
		t.Errorf("e-0: %v %v %v", tm, lat, err)
	}
}

// TestReplacingMergeTreeBackstop shows the second line of defence: if two
// writers stored the same event (a zombie sink after a rebalance), the
// telemetry table collapses the copies on merge.
func TestReplacingMergeTreeBackstop(t *testing.T) {
	srv, conn := migrated(t)
	ctx := context.Background()
	// Deleting the stored offsets is an admin's statement, not the sink's.
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Admin.Name, Password: srv.Admin.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, off := range []int64{5, 6} {
		st := newStage(t, conn, sink.Config{})
		// The same event at another partition and offset defeats the
		// offset checks on purpose.
		rec := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: int32(off), Offset: off, Value: encodeEvent(t, event(7))}
		if _, err := st.Write(ctx, []pipelines.Record{rec}); err != nil {
			t.Fatal(err)
		}
		if err := admin.Exec(ctx, "DELETE FROM sink_offsets WHERE 1"); err != nil {
			t.Fatal(err)
		}
	}
	var before, after uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&before); err != nil || before != 2 {
		t.Fatalf("before merge %d %v", before, err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE telemetry FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&after); err != nil || after != 1 {
		t.Fatalf("after merge %d %v", after, err)
	}
}

// gathered flattens reg's counters to "name{label=value}" -> value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%s}", lp.GetName(), lp.GetValue())
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// flakyConn fails its fail-th PrepareBatch: an insert that breaks part way
// through a Write (the connection and the server are real).
type flakyConn struct {
	driver.Conn
	calls atomic.Int32
	fail  int32
}

func (c *flakyConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if c.calls.Add(1) == c.fail {
		return nil, errors.New("connection reset")
	}
	return c.Conn.PrepareBatch(ctx, query, opts...)
}

// TestWriterChunksFailPartWay: a Write inserts in chunks of InsertRows,
// in order; when a later chunk fails (here its insert cannot be prepared)
// the earlier chunks stay stored, and writing the batch again skips
// exactly them: every event is stored and rolled up once, the bad record
// is rejected.
func TestWriterChunksFailPartWay(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	st := newStage(t, &flakyConn{Conn: conn, fail: 2}, sink.Config{InsertRows: 3, Registerer: reg})
	rec := func(p int32, off int64, i int) pipelines.Record {
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: p, Offset: off, Value: encodeEvent(t, event(i))}
	}
	bad := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 1, Offset: 1, Value: []byte("not avro")}
	recs := []pipelines.Record{
		rec(0, 0, 0), rec(1, 0, 1), rec(0, 1, 2), // chunk 1
		rec(0, 2, 3), bad, rec(0, 3, 4), // chunk 2: its insert fails the first time
		rec(1, 2, 5), rec(0, 4, 6), rec(0, 5, 7), // chunk 3
	}
	count := func() uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := st.Write(ctx, recs); err == nil {
		t.Fatal("first Write succeeded although its second insert failed")
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows stored after the failed Write, want the first chunk's 3", n)
	}
	rejected, err := st.Write(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if skipped := gathered(t, reg)["minecart_sink_skipped_total"]; skipped != 3 {
		t.Errorf("skipped %v, want 3", skipped)
	}
	var n, ids, hourly uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id), (SELECT sum(events) FROM telemetry_hourly) FROM telemetry").
		Scan(&n, &ids, &hourly); err != nil || n != 8 || ids != 8 || hourly != 8 {
		t.Fatalf("count %d ids %d hourly %d (%v), want 8 each", n, ids, hourly, err)
	}
	if len(rejected) != 1 || rejected[0].Record.Partition != 1 || rejected[0].Record.Offset != 1 || rejected[0].Code != sink.CodeDecode {
		t.Fatalf("rejected %+v, want the bad record", rejected)
	}
}

// TestWriterBelievesTables: a kill between a table's part and its
// materialized views leaves sink_offsets out of step with the table. A
// writer that starts (a restart) reads what its partitions' tables hold
// instead: rows the views missed are not stored twice, and a watermark
// ahead of the table (a view stored, the table's part lost) loses no row.
// After one successful Write, sink_offsets is trusted again.
func TestWriterBelievesTables(t *testing.T) {
	srv, conn := migrated(t)
	ctx := context.Background()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Admin.Name, Password: srv.Admin.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	at := base.Add(26 * time.Hour)
	recs := func(lo, hi int) []pipelines.Record {
		var out []pipelines.Record
		for i := lo; i < hi; i++ {
			out = append(out,
				pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 1, Offset: int64(i), Value: encodeEvent(t, event(i))},
				pipelines.Record{Topic: pipelines.TopicLedgerEntries, Partition: 0, Offset: int64(i),
					Value: encode(t, entry(int64(i), avro.EntryKindCredit, fmt.Sprintf("v-%03d/2026-11-20", i), fmt.Sprintf("v-%03d", i), "", 10, at))})
		}
		return out
	}
	counts := func() (tele, uniq, ledger uint64) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM telemetry").Scan(&tele, &uniq); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count() FROM ledger_entries").Scan(&ledger); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := newStage(t, conn, sink.Config{}).Write(ctx, recs(0, 10)); err != nil {
		t.Fatal(err)
	}
	// The kill: the rows of offsets 0-9 are stored, the views' record of
	// them is lost.
	if err := admin.Exec(ctx, "DELETE FROM sink_offsets WHERE 1"); err != nil {
		t.Fatal(err)
	}
	st := newStage(t, conn, sink.Config{}) // the restart
	if _, err := st.Write(ctx, recs(0, 15)); err != nil {
		t.Fatal(err)
	}
	if tele, uniq, ledger := counts(); tele != 15 || uniq != 15 || ledger != 15 {
		t.Fatalf("after a restart over rows sink_offsets missed: telemetry %d rows (%d events), ledger %d; want 15 each", tele, uniq, ledger)
	}
	// The opposite: sink_offsets claims offsets 15-19 whose rows are not
	// in the tables.
	if err := admin.Exec(ctx, "INSERT INTO sink_offsets VALUES (?, 1, 19), (?, 0, 19)", pipelines.TopicTelemetryClean, pipelines.TopicLedgerEntries); err != nil {
		t.Fatal(err)
	}
	st = newStage(t, conn, sink.Config{})
	if _, err := st.Write(ctx, recs(15, 20)); err != nil {
		t.Fatal(err)
	}
	if tele, uniq, ledger := counts(); tele != 20 || uniq != 20 || ledger != 20 {
		t.Fatalf("after a restart under a watermark ahead of the tables: telemetry %d rows (%d events), ledger %d; want 20 each", tele, uniq, ledger)
	}
	// Verified: a redelivery to the same writer is skipped by sink_offsets.
	if _, err := st.Write(ctx, recs(10, 20)); err != nil {
		t.Fatal(err)
	}
	if tele, _, ledger := counts(); tele != 20 || ledger != 20 {
		t.Fatalf("after a redelivery: telemetry %d, ledger %d; want 20", tele, ledger)
	}
}

// TestWriterScoreRevisions: each revision of a vehicle-day's score is its
// own row with the record's revision fields (revision, release_ms,
// late_added, region, events_hash, rules version), a redelivered batch
// adds nothing, and after a merge the table still holds every revision;
// the latest-revision query (docs/analytics.md) picks revision 2.
func TestWriterScoreRevisions(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	rev := func(r int32, points, late int64, hash byte) *avro.DailyScore {
		s := score("v-9", "2026-11-20", points)
		s.Revision, s.LateAdded, s.Region, s.ConfigVersion = r, late, "N52E013", "v2"
		if r > 0 {
			s.ReleaseMs = base.Add(time.Duration(24+r) * time.Hour).UnixMilli()
		}
		s.EventsHash[0] = hash
		return s
	}
	recs := []pipelines.Record{
		{Topic: pipelines.TopicScores, Offset: 0, Value: encode(t, rev(0, 100, 0, 0xa0))},
		{Topic: pipelines.TopicScores, Offset: 1, Value: encode(t, rev(1, 130, 40, 0xa1))},
		{Topic: pipelines.TopicScores, Offset: 2, Value: encode(t, rev(2, 125, 55, 0xa2))},
	}
	for i := range 2 { // the second: a redelivery after a crash
		st := newStage(t, conn, sink.Config{})
		if rj, err := st.Write(ctx, recs); err != nil || len(rj) != 0 {
			t.Fatalf("write %d: %v %v", i, rj, err)
		}
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE daily_scores FINAL"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT revision, points, late_added, release_ms, ifNull(region, ''), hex(substring(events_hash, 1, 1)), config_version
		FROM daily_scores WHERE vehicle_id = 'v-9' ORDER BY revision`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			r                  uint32
			points             int64
			late               uint64
			release            int64
			region, hash, conf string
		)
		if err := rows.Scan(&r, &points, &late, &release, &region, &hash, &conf); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %d %d %d %s %s %s", r, points, late, release, region, hash, conf))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rel := func(r int) int64 { return base.Add(time.Duration(24+r) * time.Hour).UnixMilli() }
	want := []string{"0 100 0 0 N52E013 A0 v2", fmt.Sprintf("1 130 40 %d N52E013 A1 v2", rel(1)), fmt.Sprintf("2 125 55 %d N52E013 A2 v2", rel(2))}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows\n got %q\nwant %q", got, want)
	}
	var latest uint32
	var points int64
	if err := conn.QueryRow(ctx, `SELECT argMax(revision, (revision, src_offset)), argMax(points, (revision, src_offset))
		FROM daily_scores WHERE vehicle_id = 'v-9' AND date = '2026-11-20'`).Scan(&latest, &points); err != nil || latest != 2 || points != 125 {
		t.Fatalf("latest: revision %d points %d (%v), want 2 and 125", latest, points, err)
	}
}
