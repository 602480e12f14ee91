package owner_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chschema "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/settlement"
)

var (
	base = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC) // v-1 drives 08:00-10:00
	now  = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
)

const (
	events   = 720 // v-1: one every 10 s
	stepMs   = 10_000
	days     = 20 // v-1 scores and credits: 2026-11-01 .. 2026-11-20
	inReader = 4  // of the 5 ledger blocks, the reader has applied 4
)

func connect(t testing.TB, srv *chtest.Server) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Writer.Name, Password: srv.Writer.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := chschema.Migrate(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	return conn
}

func send(t testing.TB, conn driver.Conn, insert string, rows [][]any) {
	t.Helper()
	bt, err := conn.PrepareBatch(context.Background(), insert)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := bt.Append(r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := bt.Send(); err != nil {
		t.Fatal(err)
	}
}

const telemetryInsert = `INSERT INTO telemetry (vehicle_id, time, device_id, seq, event_id, tz, lat_e6, lon_e6, hdop,
	speed_kmh, heading_deg, accel_lon_ms2, accel_lat_ms2, speed_limit_kmh, odometer_m, engine_on, fuel_pct, battery_v,
	coolant_c, fault_codes, src_topic, src_partition, src_offset)`

func f32(v float32) *float32 { return &v }

// seedTelemetry: v-1's 720 events (fuel missing on every 7th, coolant only
// on every 3rd, P0301 on events 100-199, P0420 on the last 20, engine off
// at the last), and three old events of v-2 (2026-10-15).
func seedTelemetry(t testing.TB, conn driver.Conn) {
	var rows [][]any
	for i := range events {
		var fuel, cool *float32
		if i%7 != 0 {
			fuel = f32(60 - float32(i)/100)
		}
		if i%3 == 0 {
			cool = f32(80 + float32(i%10))
		}
		codes := []string{}
		if i >= 100 && i < 200 {
			codes = append(codes, "P0301")
		}
		if i >= events-20 {
			codes = append(codes, "P0420")
		}
		rows = append(rows, []any{"v-1", base.Add(time.Duration(i) * stepMs * time.Millisecond), "d-1", uint64(i + 1),
			fmt.Sprintf("e-%d", i), "Europe/Berlin", int32(52_500_000 + i*10), int32(13_400_000 + i*10), f32(0.9),
			float32(i % 120), float32(90), float32(0), float32(0), f32(50), uint64(10_000_000 + i*50), i != events-1,
			fuel, f32(12.6), cool, codes, "t", int32(0), int64(i)})
	}
	old := time.Date(2026, 10, 15, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		rows = append(rows, []any{"v-2", old.Add(time.Duration(i) * time.Second), "d-2", uint64(i + 1), fmt.Sprintf("f-%d", i),
			"UTC", int32(48_000_000), int32(2_000_000), (*float32)(nil), float32(0), float32(0), float32(0), float32(0),
			(*float32)(nil), uint64(5000), true, (*float32)(nil), (*float32)(nil), (*float32)(nil), []string{}, "t", int32(1), int64(i)})
	}
	// v-3: two devices reporting at the same instants (ties on time).
	for i := range 20 {
		dev := fmt.Sprintf("d-3%d", i%2)
		rows = append(rows, []any{"v-3", base.Add(time.Duration(i/2) * time.Second), dev, uint64(i/2 + 1), fmt.Sprintf("g-%d", i),
			"UTC", int32(48_000_000 + i), int32(2_000_000), (*float32)(nil), float32(i), float32(0), float32(0), float32(0),
			(*float32)(nil), uint64(5000), true, (*float32)(nil), (*float32)(nil), (*float32)(nil), []string{}, "t", int32(2), int64(i)})
	}
	send(t, conn, telemetryInsert, rows)
}

const scoresInsert = `INSERT INTO daily_scores (date, vehicle_id, id, device_id, tz, window_start, window_end,
	config_version, distance_km, gps_km, odometer_km, driving_s, harsh_brake, harsh_accel, harsh_corner,
	speeding_s, night_s, fatigue_events, events, late_events, gps_jumps, hdop_rejected, odometer_rollbacks,
	score, points, flags, flag_reasons, events_hash, src_topic, src_partition, src_offset)`

func scoreRow(vehicle string, day int, points int64, offset int64) []any {
	date := time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC)
	var flags, reasons []string
	if day == 5 {
		flags, reasons = []string{"gps_jump"}, []string{"3 jumps over 300 km/h"}
	}
	return []any{date, vehicle, fmt.Sprintf("%s/%s", vehicle, date.Format(time.DateOnly)), "d-1", "UTC", date,
		date.Add(24 * time.Hour), "v1", float64(day), float64(day) + 0.5, float64(day) + 0.2, uint32(day * 60),
		uint32(day % 3), uint32(1), uint32(0), uint32(day), uint32(0), uint32(0), uint64(day * 100), (*uint64)(nil),
		uint32(0), uint64(0), uint32(0), float32(0.8), points, flags, reasons, "h", "s", int32(0), offset}
}

func seedScores(t testing.TB, conn driver.Conn) {
	var rows [][]any
	for d := 1; d <= days; d++ {
		rows = append(rows, scoreRow("v-1", d, int64(d*10), int64(d)))
	}
	rows = append(rows, scoreRow("v-2", 3, 7, 100))
	send(t, conn, scoresInsert, rows)
	// A re-emitted score of 2026-11-20 (later offset) replaces the first.
	send(t, conn, scoresInsert, [][]any{scoreRow("v-1", 20, 999, 1000)})
}

const ledgerInsert = `INSERT INTO ledger_entries (leaf_index, block_height, tree_size, block_time, kind, id, vehicle_id,
	account, delta, date, config_version, reason, redemption_id, ref, root, entry, src_topic, src_partition, src_offset)`

type idle struct{}

func (idle) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}

// seedLedger appends v-1's 20 credits and one of v-2 in 5 blocks, stores
// every entry in ClickHouse and gives a proofs Server all blocks but the last.
func seedLedger(t testing.TB, conn driver.Conn) *proofs.Server {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signer, err := ledger.NewSigner("minecart.test/ledger", key)
	if err != nil {
		t.Fatal(err)
	}
	credit := func(vehicle string, day int, points int64) ledger.Entry {
		date := fmt.Sprintf("2026-11-%02d", day)
		return ledger.Entry{Kind: ledger.KindCredit, ID: vehicle + "/" + date, VehicleID: vehicle, Date: date, TZ: "UTC",
			WindowEndMs: time.Date(2026, 11, day+1, 0, 0, 0, 0, time.UTC).UnixMilli(), ConfigVersion: "v1",
			Points: points, Score: 0.8, EventsHash: bytes.Repeat([]byte{byte(day)}, 32)}
	}
	rel := ledger.Release{TimestampMs: now.UnixMilli(), Clock: ledger.ClockEvent}
	for d := 1; d <= days; d++ {
		rel.Entries = append(rel.Entries, credit("v-1", d, int64(d*10)))
		if d == 3 {
			rel.Entries = append(rel.Entries, credit("v-2", d, 7))
		}
	}
	book := ledger.NewBook()
	blocks, appended, _, err := book.Append(rel, 5, signer)
	if err != nil || len(blocks) != 5 {
		t.Fatalf("append: %d blocks, %v", len(blocks), err)
	}
	// v-2's day re-scored after late data: 7 -> 9 points, past the reader's head.
	leaf, _ := book.CreditLeaf("v-2/2026-11-03")
	rb, ra, _, err := book.Append(ledger.Release{TimestampMs: now.UnixMilli(), Clock: ledger.ClockEvent, Entries: []ledger.Entry{{
		Kind: ledger.KindRescore, ID: ledger.RescoreID("v-2/2026-11-03", 1), VehicleID: "v-2", Ref: "v-2/2026-11-03", RefLeaf: leaf,
		Revision: 1, Points: 9, Amount: 2, EventsHash: bytes.Repeat([]byte{9}, 32), ConfigVersion: "v1", Date: "2026-11-03",
		Reason: "late data: 40 events of 2026-11-03 arrived after the day closed; re-scored to 9 points (+2), revision 1, rules v1"}}}, 5, signer)
	if err != nil || len(rb) != 1 {
		t.Fatalf("append rescore: %v", err)
	}
	appended = append(appended, ra...)
	reader, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks[:inReader] {
		if err := reader.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	var rows [][]any
	for _, a := range appended {
		h := a.Block.Header
		date, _ := time.Parse(time.DateOnly, a.Entry.Date)
		rows = append(rows, []any{a.LeafIndex, h.Height, h.TreeSize, time.UnixMilli(h.TimestampMs).UTC(), a.Entry.Kind.String(),
			a.Entry.ID, a.Entry.VehicleID, "", a.Entry.Delta(), &date, "v1", a.Entry.Reason, "", a.Entry.Ref, h.Root.String(), string(a.Raw),
			"e", int32(0), int64(a.LeafIndex)})
	}
	send(t, conn, ledgerInsert, rows)
	send(t, conn, ledgerInsert, rows[9:10]) // a row stored twice counts once
	return reader
}

type memState map[string][]byte

func (m memState) Get(key string) ([]byte, bool) { v, ok := m[key]; return v, ok }

func balances(t testing.TB) owner.Balances {
	serde := schemas.SingleObject()
	bind, err := serde.Marshal(&avro.AccountBinding{VehicleID: "v-1", Owner: "owner-1", UpdatedMs: now})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := settlement.EncodeChange(settlement.Change{Key: settlement.AccountKey("owner-1"),
		Value: settlement.Account{ID: "owner-1", Balance: 1500, Reserved: 200}})
	if err != nil {
		t.Fatal(err)
	}
	return owner.SettlementBalances(memState{"v-1": bind}, memState{settlement.AccountKey("owner-1"): acct}, serde)
}

type env struct {
	srv *httptest.Server
	reg *prometheus.Registry
	tok string // bearer token of the caller
}

func (e env) get(t *testing.T, path string, into any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("%s: %v: %s", path, err, body)
		}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d without an error message: %s", path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode
}

func TestOwnerAPI(t *testing.T) {
	srv := chtest.Start(t)
	conn := connect(t, srv)
	seedTelemetry(t, conn)
	seedScores(t, conn)
	reader := seedLedger(t, conn)
	reg := prometheus.NewRegistry()
	// The API reads as a readonly user, as in minecart run.
	ro, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Analyst.Name, Password: srv.Analyst.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	c := testAuth(t)
	h, err := owner.NewHandler(owner.Config{Conn: ro, Proofs: reader, Balances: balances(t), Auth: c.auth,
		Registerer: reg, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e := env{srv: httptest.NewServer(h), reg: reg, tok: c.operator}
	t.Cleanup(e.srv.Close)

	t.Run("position", func(t *testing.T) { testPosition(t, e) })
	t.Run("track", func(t *testing.T) { testTrack(t, e) })
	t.Run("reports", func(t *testing.T) { testReports(t, e) })
	t.Run("condition", func(t *testing.T) { testCondition(t, e) })
	t.Run("points", func(t *testing.T) { testPoints(t, e, reader) })
	t.Run("points without proofs", func(t *testing.T) { testPointsProofsDown(t, conn) })
	t.Run("campaign bonus", func(t *testing.T) { testBonus(t, e, conn) })
	t.Run("cells", func(t *testing.T) { testCells(t, e) })
	t.Run("account entries", func(t *testing.T) { testAccountEntries(t, e, conn) })
	t.Run("marks", func(t *testing.T) { testMarks(t, e, conn) })
	t.Run("errors", func(t *testing.T) { testErrors(t, e) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, e) })
	t.Run("account transfers", func(t *testing.T) { testAccountTransfers(t, e, conn) })
	t.Run("trips", func(t *testing.T) { testTrips(t, e, conn) })
}

// testAccountTransfers: /v1/accounts/{owner}/entries lists the owner's
// transfers on both sides, incoming by counter_account (migration 0009),
// newest first, and no one else's; /points of its vehicle lists none (the
// vehicle's entries only).
func testAccountTransfers(t *testing.T, e env, conn driver.Conn) {
	const tInsert = `INSERT INTO ledger_entries (leaf_index, block_height, tree_size, block_time, kind, id, vehicle_id,
	account, counter_account, delta, date, config_version, reason, redemption_id, ref, root, entry, src_topic, src_partition, src_offset)`
	row := func(leaf uint64, id, debit, credit string, delta int64) []any {
		return []any{leaf, uint64(95), leaf + 1, now, "transfer", id, "", debit, credit, delta, (*time.Time)(nil), "", "", "", "",
			"", "entry-" + id, "e", int32(0), int64(leaf)}
	}
	send(t, conn, tInsert, [][]any{
		row(1100, "t-in", "bob", "owner-1", -30),
		row(1101, "t-out", "owner-1", "carol", -5),
		row(1102, "t-other", "bob", "carol", -7),
	})
	var got owner.AccountEntries
	if code := e.get(t, "/v1/accounts/owner-1/entries?limit=3", &got); code != 200 || len(got.Entries) != 3 {
		t.Fatalf("status %d, %d entries", code, len(got.Entries))
	}
	line := func(x owner.LedgerEntry) string {
		return fmt.Sprintf("%s %s %s>%s %d", x.Kind, x.ID, x.Account, x.CounterAccount, x.Delta)
	}
	if g, w := line(got.Entries[0])+" | "+line(got.Entries[1])+" | "+got.Entries[2].Kind,
		"transfer t-out owner-1>carol -5 | transfer t-in bob>owner-1 -30 | debit"; g != w {
		t.Errorf("newest entries %q, want %q", g, w)
	}
	var p owner.Points
	if code := e.get(t, "/v1/vehicles/v-1/points?limit=1", &p); code != 200 || len(p.Entries) != 1 || p.Entries[0].Kind != "credit" {
		t.Errorf("v-1's points: status %d %+v", code, p.Entries)
	}
}

func testPosition(t *testing.T, e env) {
	var p owner.Position
	if code := e.get(t, "/v1/vehicles/v-1/position", &p); code != 200 {
		t.Fatalf("status %d", code)
	}
	last := events - 1
	want := base.Add(time.Duration(last) * stepMs * time.Millisecond)
	if !p.Time.Equal(want) || p.Lat != float64(52_500_000+last*10)/1e6 || p.Lon != float64(13_400_000+last*10)/1e6 ||
		p.EngineOn || p.OdometerKm != float64(10_000_000+last*50)/1000 || p.AgeS != now.Sub(want).Seconds() {
		t.Errorf("position %+v, want time %s", p, want)
	}
}

func trackPages(t *testing.T, e env, q url.Values) (owner.Track, []owner.TrackPoint, int) {
	t.Helper()
	var (
		first owner.Track
		all   []owner.TrackPoint
		pages int
	)
	for {
		var tr owner.Track
		if code := e.get(t, "/v1/vehicles/v-1/track?"+q.Encode(), &tr); code != 200 {
			t.Fatalf("%v: status %d", q, code)
		}
		if pages == 0 {
			first = tr
		}
		pages++
		all = append(all, tr.Points...)
		if tr.NextCursor == "" {
			return first, all, pages
		}
		if pages > 1000 {
			t.Fatal("cursor does not end")
		}
		q.Set("cursor", tr.NextCursor)
	}
}

func testTrack(t *testing.T, e env) {
	from, to := base.Format(time.RFC3339), base.Add(2*time.Hour).Format(time.RFC3339)
	t.Run("raw pages cover every event once", func(t *testing.T) {
		first, pts, pages := trackPages(t, e, url.Values{"from": {from}, "to": {to}, "limit": {"100"}})
		if first.Downsampled || first.InRange != events || len(pts) != events || pages != 8 {
			t.Fatalf("downsampled %v, in range %d, %d points in %d pages", first.Downsampled, first.InRange, len(pts), pages)
		}
		for i, p := range pts {
			if want := base.Add(time.Duration(i) * stepMs * time.Millisecond); !p.Time.Equal(want) ||
				p.Lat != float64(52_500_000+i*10)/1e6 || p.SpeedKmh != float32(i%120) {
				t.Fatalf("point %d: %+v, want time %s", i, p, want)
			}
		}
	})
	t.Run("a range longer than a day counts the same", func(t *testing.T) {
		// Up to 25 h the first page counts with a window over its own
		// scan, beyond with a subquery: both must give the range's events.
		for _, span := range []time.Duration{25 * time.Hour, 25*time.Hour + time.Millisecond, 72 * time.Hour} {
			q := url.Values{"from": {base.Add(-time.Hour).Format(time.RFC3339Nano)}, "to": {base.Add(span - time.Hour).Format(time.RFC3339Nano)}, "limit": {"300"}}
			first, pts, pages := trackPages(t, e, q)
			if first.Downsampled || first.InRange != events || len(pts) != events || pages != 3 {
				t.Fatalf("span %s: downsampled %v, in range %d, %d points in %d pages", span, first.Downsampled, first.InRange, len(pts), pages)
			}
		}
	})
	t.Run("downsampled keeps both ends and at most max_points", func(t *testing.T) {
		for _, limit := range []string{"7", "1000"} {
			first, pts, _ := trackPages(t, e, url.Values{"from": {from}, "to": {to}, "max_points": {"50"}, "limit": {limit}})
			if !first.Downsampled || first.BucketMs <= 0 || len(pts) != 50 {
				t.Fatalf("limit %s: downsampled %v, bucket %d ms, %d points", limit, first.Downsampled, first.BucketMs, len(pts))
			}
			if !pts[0].Time.Equal(base) || !pts[len(pts)-1].Time.Equal(base.Add((events-1)*stepMs*time.Millisecond)) {
				t.Errorf("limit %s: ends %s .. %s", limit, pts[0].Time, pts[len(pts)-1].Time)
			}
			for i := 1; i < len(pts); i++ {
				if !pts[i].Time.After(pts[i-1].Time) {
					t.Fatalf("limit %s: point %d at %s not after %s", limit, i, pts[i].Time, pts[i-1].Time)
				}
				// each bucket's point is its first event
				if b := pts[i].Time.Sub(base).Milliseconds() / first.BucketMs; i < len(pts)-1 &&
					pts[i].Time.Sub(base).Milliseconds()-b*first.BucketMs >= stepMs {
					t.Errorf("point %d at %s is not its bucket's first event", i, pts[i].Time)
				}
			}
		}
	})
	t.Run("events at the same instant are paged once each", func(t *testing.T) {
		q := url.Values{"from": {from}, "to": {to}, "limit": {"3"}}
		var seen []float32
		for pages := 0; ; pages++ {
			var tr owner.Track
			if code := e.get(t, "/v1/vehicles/v-3/track?"+q.Encode(), &tr); code != 200 || pages > 20 {
				t.Fatalf("status %d after %d pages", code, pages)
			}
			for _, p := range tr.Points {
				seen = append(seen, p.SpeedKmh) // speed = the event's number
			}
			if tr.NextCursor == "" {
				break
			}
			q.Set("cursor", tr.NextCursor)
		}
		if len(seen) != 20 {
			t.Fatalf("%d points, want 20: %v", len(seen), seen)
		}
		for i, s := range seen {
			if s != float32(i) { // (time, device) order: d-30 then d-31 at each instant
				t.Fatalf("point %d is event %v: %v", i, s, seen)
			}
		}
	})
	t.Run("known vehicle, empty range", func(t *testing.T) {
		var tr owner.Track
		if code := e.get(t, "/v1/vehicles/v-2/track?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z", &tr); code != 200 ||
			len(tr.Points) != 0 || tr.NextCursor != "" {
			t.Fatalf("status %d, %+v", code, tr)
		}
	})
	t.Run("default from is 24 hours before to", func(t *testing.T) {
		var tr owner.Track
		if code := e.get(t, "/v1/vehicles/v-1/track?to=2026-11-20T20:00:00Z", &tr); code != 200 ||
			len(tr.Points) != events || !tr.From.Equal(base.Add(-12*time.Hour)) {
			t.Fatalf("status %d, %d points, %s..%s", code, len(tr.Points), tr.From, tr.To)
		}
	})
}

func testReports(t *testing.T, e env) {
	q := url.Values{"from": {"2026-11-01"}, "to": {"2026-11-20"}, "limit": {"6"}}
	var all []owner.Report
	for pages := 0; ; pages++ {
		var r owner.Reports
		if code := e.get(t, "/v1/vehicles/v-1/reports?"+q.Encode(), &r); code != 200 {
			t.Fatalf("status %d", code)
		}
		all = append(all, r.Reports...)
		if r.NextCursor == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 4", pages+1)
			}
			break
		}
		q.Set("cursor", r.NextCursor)
	}
	if len(all) != days {
		t.Fatalf("%d reports, want %d", len(all), days)
	}
	for i, r := range all {
		d := i + 1
		wantPoints := int64(d * 10)
		if d == 20 {
			wantPoints = 999 // the re-emitted score
		}
		if r.Date != fmt.Sprintf("2026-11-%02d", d) || r.Points != wantPoints || r.DistanceKm != float64(d) ||
			r.DrivingS != uint32(d*60) || r.HarshBrake != uint32(d%3) || r.SpeedingS != uint32(d) || r.Events != uint64(d*100) ||
			r.ScoreID != "v-1/"+r.Date || r.Score != 0.8 {
			t.Errorf("report %d: %+v", i, r)
		}
		if (d == 5) != (len(r.Flags) == 1 && r.Flags[0] == "gps_jump" && len(r.FlagReasons) == 1) {
			t.Errorf("report %s flags %v %v", r.Date, r.Flags, r.FlagReasons)
		}
	}
	var r owner.Reports
	if code := e.get(t, "/v1/vehicles/v-1/reports", &r); code != 200 || len(r.Reports) != 20 || r.To != "2026-11-21" || r.From != "2026-10-23" {
		t.Errorf("default range: status %d, %d reports, %s..%s", code, len(r.Reports), r.From, r.To)
	}
}

func testCondition(t *testing.T, e env) {
	var c owner.Condition
	if code := e.get(t, "/v1/vehicles/v-1/condition", &c); code != 200 {
		t.Fatalf("status %d", code)
	}
	last := base.Add((events - 1) * stepMs * time.Millisecond)
	// last fuel reading: event 718 (719 is a multiple of 7? 719%7=5, so 719)
	if c.Events != events || c.LastSeen == nil || !c.LastSeen.Equal(last) || c.EngineOn == nil || *c.EngineOn ||
		c.OdometerKm == nil || *c.OdometerKm != float64(10_000_000+(events-1)*50)/1000 {
		t.Errorf("condition %+v", c)
	}
	if c.FuelPct == nil || !c.FuelPct.Time.Equal(last) || c.FuelPct.Value != 60-float32(events-1)/100 {
		t.Errorf("fuel %+v", c.FuelPct)
	}
	lastCool := base.Add(717 * stepMs * time.Millisecond) // the last multiple of 3
	if c.CoolantC == nil || !c.CoolantC.Time.Equal(lastCool) || c.CoolantC.Value != 87 || c.BatteryV == nil {
		t.Errorf("coolant %+v battery %+v", c.CoolantC, c.BatteryV)
	}
	want := []owner.Fault{
		{Code: "P0420", FirstSeen: base.Add(700 * stepMs * time.Millisecond), LastSeen: last, Samples: 20, Active: true},
		{Code: "P0301", FirstSeen: base.Add(100 * stepMs * time.Millisecond), LastSeen: base.Add(199 * stepMs * time.Millisecond), Samples: 100},
	}
	if fmt.Sprint(c.Faults) != fmt.Sprint(want) {
		t.Errorf("faults %+v\nwant %+v", c.Faults, want)
	}
	var old owner.Condition
	if code := e.get(t, "/v1/vehicles/v-2/condition", &old); code != 200 || old.Events != 0 || old.LastSeen != nil || len(old.Faults) != 0 {
		t.Errorf("v-2 in the default window: status %d %+v", code, old)
	}
	if code := e.get(t, "/v1/vehicles/v-2/condition?days=60", &old); code != 200 || old.Events != 3 || old.FuelPct != nil {
		t.Errorf("v-2 over 60 days: status %d %+v", code, old)
	}
}

func testPoints(t *testing.T, e env, reader *proofs.Server) {
	head, err := reader.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	root, err := merkle.ParseHash(head.Root)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := head.Checkpoint
	q := url.Values{"limit": {"6"}}
	var (
		all   []owner.LedgerEntry
		first owner.Points
	)
	for pages := 0; ; pages++ {
		var p owner.Points
		if code := e.get(t, "/v1/vehicles/v-1/points?"+q.Encode(), &p); code != 200 {
			t.Fatalf("status %d", code)
		}
		if pages == 0 {
			first = p
		}
		all = append(all, p.Entries...)
		if p.NextCursor == "" {
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	if first.Balance == nil || *first.Balance != (owner.Balance{Owner: "owner-1", Account: "owner-1", Balance: 1500, Reserved: 200, Available: 1300}) {
		t.Errorf("balance %+v", first.Balance)
	}
	if first.EarnedTotal == nil || *first.EarnedTotal != 2100 { // 10+20+...+200
		t.Errorf("total %v", first.EarnedTotal)
	}
	if first.TreeSize != head.TreeSize || first.Root != head.Root || first.Checkpoint != checkpoint {
		t.Errorf("tree %d %s, want the reader's head %d %s", first.TreeSize, first.Root, head.TreeSize, head.Root)
	}
	if len(all) != days {
		t.Fatalf("%d entries, want %d", len(all), days)
	}
	proved := 0
	for i, en := range all {
		if i > 0 && en.LeafIndex >= all[i-1].LeafIndex {
			t.Fatalf("entry %d: leaf %d not newest first", i, en.LeafIndex)
		}
		if en.Date != fmt.Sprintf("2026-11-%02d", days-i) || en.Delta != int64((days-i)*10) || en.Kind != "credit" {
			t.Errorf("entry %d: %+v", i, en)
		}
		leaf := merkle.HashLeaf(en.Entry)
		if leaf.String() != en.LeafHash {
			t.Errorf("entry %d: leaf hash %s, want %s", i, en.LeafHash, leaf)
		}
		if en.LeafIndex >= head.TreeSize {
			if en.Proof != nil || en.ProofError == "" {
				t.Errorf("entry %d (leaf %d) beyond the reader's head: proof %+v error %q", i, en.LeafIndex, en.Proof, en.ProofError)
			}
			continue
		}
		if en.Proof == nil {
			t.Fatalf("entry %d (leaf %d): no proof (%s)", i, en.LeafIndex, en.ProofError)
		}
		var hashes []merkle.Hash
		for _, s := range en.Proof.Hashes {
			h, err := merkle.ParseHash(s)
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, h)
		}
		if en.Proof.TreeSize != head.TreeSize || en.Proof.Root != head.Root {
			t.Errorf("entry %d proved against %d %s", i, en.Proof.TreeSize, en.Proof.Root)
		}
		if err := merkle.VerifyInclusion(en.LeafIndex, en.Proof.TreeSize, leaf, hashes, root); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		// the entry bytes decode to what the row says
		dec, err := ledger.DecodeEntry(en.Entry)
		if err != nil || dec.ID != en.ID || dec.Points != en.Delta {
			t.Errorf("entry %d decodes to %+v, %v", i, dec, err)
		}
		proved++
	}
	if proved != days-1 {
		t.Errorf("%d entries proved, want %d (all but the one past the reader's head)", proved, days-1)
	}
	// The remote client gets the same proofs from the ledger's HTTP API.
	ls := httptest.NewServer(reader.Handler())
	defer ls.Close()
	remote, local := proofs.NewClient(nil, ls.URL+"/"), reader
	for _, leaf := range []uint64{0, 7} {
		a, errA := remote.InclusionProof(context.Background(), leaf, 0)
		b, errB := local.InclusionProof(context.Background(), leaf, 0)
		if errA != nil || errB != nil || fmt.Sprint(a) != fmt.Sprint(b) || a.Checkpoint != checkpoint {
			t.Errorf("leaf %d: remote %+v (%v), local %+v (%v)", leaf, a, errA, b, errB)
		}
	}
	if _, err := remote.InclusionProof(context.Background(), head.TreeSize+5, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("leaf past the head: %v, want ledger.ErrNotFound", err)
	}
	var p2 owner.Points
	if code := e.get(t, "/v1/vehicles/v-2/points", &p2); code != 200 || len(p2.Entries) != 2 || p2.Entries[1].Proof == nil ||
		p2.Balance == nil || p2.Balance.Account != settlement.HoldAccount("v-2") || p2.Balance.Owner != "" {
		t.Fatalf("v-2: status %d %+v", code, p2)
	}
	// The rescore, newest first: why (reason), by how much, which credit.
	rs, cr := p2.Entries[0], p2.Entries[1]
	if rs.Kind != "rescore" || rs.Delta != 2 || rs.Ref != cr.ID || rs.RefLeafIndex == nil || *rs.RefLeafIndex != cr.LeafIndex ||
		rs.DayPoints == nil || *rs.DayPoints != 9 || rs.Revision != 1 || !strings.Contains(rs.Reason, "late data") || rs.Date != "2026-11-03" {
		t.Errorf("v-2 rescore %+v", rs)
	}
	if p2.EarnedTotal == nil || *p2.EarnedTotal != 9 {
		t.Errorf("v-2 total %v, want 9 (credit 7 + rescore 2)", p2.EarnedTotal)
	}
}

// downProofs is a proof API that answers every call with err.
type downProofs struct {
	err   error
	calls atomic.Int32
}

func (d *downProofs) InclusionProof(context.Context, uint64, uint64) (proofs.Proof, error) {
	d.calls.Add(1)
	return proofs.Proof{}, d.err
}

// lockedBuffer is a log sink the handler and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testPointsProofsDown: with the ledger's proof API out of reach (a remote
// ledger restarting), /points still answers 200 with the balance and every
// entry, each with proof_error "ledger proofs unavailable"; the proof API
// is asked once per page and the failure logged once per request. A bad
// request to the proof API stays an error.
func testPointsProofsDown(t *testing.T, conn driver.Conn) {
	serve := func(p owner.Proofs, log io.Writer) env {
		c := testAuth(t)
		h, err := owner.NewHandler(owner.Config{Conn: conn, Proofs: p, Balances: balances(t), Auth: c.auth,
			Logger: slog.New(slog.NewTextHandler(log, nil)), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		e := env{srv: httptest.NewServer(h), tok: c.operator}
		t.Cleanup(e.srv.Close)
		return e
	}
	check := func(e env, what string, log *lockedBuffer) {
		t.Helper()
		var p owner.Points
		if code := e.get(t, "/v1/vehicles/v-1/points?limit=6", &p); code != 200 {
			t.Fatalf("%s: status %d", what, code)
		}
		if p.Balance == nil || p.Balance.Balance != 1500 || len(p.Entries) != 6 || p.NextCursor == "" {
			t.Errorf("%s: balance %+v, %d entries, cursor %q", what, p.Balance, len(p.Entries), p.NextCursor)
		}
		for _, en := range p.Entries {
			if en.Proof != nil || en.ProofError != "ledger proofs unavailable" {
				t.Errorf("%s: leaf %d: proof %+v, error %q", what, en.LeafIndex, en.Proof, en.ProofError)
			}
		}
		if n := strings.Count(log.String(), "ledger proofs unavailable"); n != 1 {
			t.Errorf("%s: logged %d times, want once:\n%s", what, n, log)
		}
	}
	// Nothing listens on port 1 of the loopback.
	var log lockedBuffer
	check(serve(proofs.NewClient(nil, "http://127.0.0.1:1"), &log), "unreachable ledger", &log)

	down := &downProofs{err: errors.New("ledger proofs: GET /v1/ledger/leaves/19/proof: status 502: bad gateway")}
	var log2 lockedBuffer
	check(serve(down, &log2), "ledger answering 502", &log2)
	if n := down.calls.Load(); n != 1 {
		t.Errorf("proof API asked %d times for one page, want 1 (not again after it failed)", n)
	}

	bad := serve(&downProofs{err: fmt.Errorf("leaf: %w", proofs.ErrBadRequest)}, io.Discard)
	if code := bad.get(t, "/v1/vehicles/v-1/points", nil); code != http.StatusInternalServerError {
		t.Errorf("bad request to the proof API: status %d, want 500", code)
	}
}

func testErrors(t *testing.T, e env) {
	var tr owner.Track
	e.get(t, "/v1/vehicles/v-1/track?from=2026-11-20T08:00:00Z&to=2026-11-20T10:00:00Z&limit=10", &tr)
	var rp owner.Reports
	e.get(t, "/v1/vehicles/v-1/reports?from=2026-11-01&to=2026-11-20&limit=2", &rp)
	if tr.NextCursor == "" || rp.NextCursor == "" {
		t.Fatal("no cursors to misuse")
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/v1/vehicles/v%201/position", 400},
		{"/v1/vehicles/v-1/track?from=yesterday", 400},
		{"/v1/vehicles/v-1/track?from=2026-11-20T10:00:00Z&to=2026-11-20T08:00:00Z", 400},
		{"/v1/vehicles/v-1/track?from=2026-11-20T10:00:00Z&to=2026-11-20T10:00:00Z", 400},
		{"/v1/vehicles/v-1/track?from=2026-01-01T00:00:00Z&to=2026-11-20T00:00:00Z", 400}, // too long
		{"/v1/vehicles/v-1/track?max_points=1", 400},
		{"/v1/vehicles/v-1/track?max_points=x", 400},
		{"/v1/vehicles/v-1/track?limit=0", 400},
		{"/v1/vehicles/v-1/track?cursor=!!!", 400},
		{"/v1/vehicles/v-1/track?from=2026-11-20T08:00:00Z&to=2026-11-20T09:00:00Z&cursor=" + tr.NextCursor, 400}, // another query's
		{"/v1/vehicles/v-2/track?from=2026-11-20T08:00:00Z&to=2026-11-20T10:00:00Z&limit=10&cursor=" + tr.NextCursor, 400},
		{"/v1/vehicles/v-1/reports?from=2026-13-01", 400},
		{"/v1/vehicles/v-1/reports?from=2026-11-20&to=2026-11-01", 400},
		{"/v1/vehicles/v-1/reports?from=2024-01-01&to=2026-11-01", 400}, // too long
		{"/v1/vehicles/v-1/reports?limit=1000", 400},
		{"/v1/vehicles/v-1/reports?from=2026-11-01&to=2026-11-20&cursor=" + tr.NextCursor, 400},
		{"/v1/vehicles/v-1/condition?days=0", 400},
		{"/v1/vehicles/v-1/condition?days=366", 400},
		{"/v1/vehicles/v-1/points?limit=501", 400},
		{"/v1/vehicles/v-1/points?cursor=" + rp.NextCursor, 400},
		{"/v1/vehicles/nobody/position", 404},
		{"/v1/vehicles/nobody/track", 404},
		{"/v1/vehicles/nobody/reports", 404},
		{"/v1/vehicles/nobody/condition", 404},
		{"/v1/vehicles/nobody/points", 404},
		{"/v1/vehicles/v-1/unknown", 404},
		{"/v1/vehicles/v-1/track?from=2026-11-20T08:00:00Z&to=2026-11-20T10:00:00Z&limit=10&cursor=" + tr.NextCursor, 200},
	} {
		if code := e.get(t, c.path, nil); code != c.code {
			t.Errorf("%s: status %d, want %d", c.path, code, c.code)
		}
	}
	// injection attempts never reach a query: they are not vehicle ids
	// (services/ids), refused with 400; ids that are reach ClickHouse as
	// bound parameters.
	for _, vin := range []string{"v-1'OR'1'='1", "v-1%5C'", "%7Bv:String%7D", "%2e%2e", "a%2Fb%20c"} {
		if code := e.get(t, "/v1/vehicles/"+vin+"/position", nil); code != 400 {
			t.Errorf("%s: status %d, want 400", vin, code)
		}
	}
}

func testMetrics(t *testing.T, e env) {
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "minecart_owner_request_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetValue() + "/"
			}
			counts[key] = m.GetHistogram().GetSampleCount()
		}
	}
	if counts["4xx/track/"] == 0 || counts["2xx/points/"] == 0 || counts["2xx/position/"] == 0 {
		t.Errorf("latency histogram counts %v", counts)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := owner.NewHandler(owner.Config{}); err == nil {
		t.Error("no connection accepted")
	}
}

// testBonus: a campaign's bonus entry shows which campaign paid what
// (docs/campaigns.md), decoded from the entry bytes.
func testBonus(t *testing.T, e env, conn driver.Conn) {
	b := ledger.Entry{Kind: ledger.KindBonus, ID: "bonus/acme/wk/aa", VehicleID: "v-9", Campaign: "acme/wk",
		RuleHash: bytes.Repeat([]byte{1}, 32), CreditLeaf: 3, CreditHash: bytes.Repeat([]byte{2}, 32), Inputs: []byte{1},
		Requested: 80, Amount: 60, WindowEndMs: now.UnixMilli(), Date: "2026-11-20"}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	date, _ := time.Parse(time.DateOnly, b.Date)
	send(t, conn, ledgerInsert, [][]any{{uint64(1000), uint64(99), uint64(1001), now, "bonus", b.ID, b.VehicleID, "", int64(60), &date,
		"", "", "", "", "r", string(raw), "e", int32(0), int64(1000)}})
	var p owner.Points
	if code := e.get(t, "/v1/vehicles/v-9/points", &p); code != 200 || len(p.Entries) != 1 {
		t.Fatalf("status %d, %d entries", code, len(p.Entries))
	}
	got := p.Entries[0]
	if got.Kind != "bonus" || got.Campaign != "acme/wk" || got.Delta != 60 || got.Requested != 80 || got.CreditLeaf == nil || *got.CreditLeaf != 3 {
		t.Errorf("bonus entry %+v", got)
	}
}
