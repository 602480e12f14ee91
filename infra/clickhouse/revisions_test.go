package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chmig "github.com/minecart/minecart/infra/clickhouse"
)

// revisionsMigration is the migration that keeps every score revision.
const revisionsMigration = 12

// migrateBefore applies the embedded migrations below version v the way
// Migrate does (statements, then the schema_migrations row): a database as
// an older minecart left it.
func migrateBefore(ctx context.Context, t *testing.T, conn driver.Conn, v uint32) {
	t.Helper()
	ms, err := chmig.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations
(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))
ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version >= v {
			break
		}
		for _, st := range m.Statements {
			if err := conn.Exec(ctx, st); err != nil {
				t.Fatalf("%04d_%s: %v", m.Version, m.Name, err)
			}
		}
		if err := conn.Exec(ctx, "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)", m.Version, m.Name, m.Checksum, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
}

const oldScoreInsert = `INSERT INTO daily_scores (date, vehicle_id, id, device_id, tz, window_start, window_end, config_version,
	score, points, flags, flag_reasons, events_hash, src_topic, src_partition, src_offset)`

// TestMigrateScoreRevisions: migration 0012 on a data directory written
// before it (a day scored twice, unmerged, and another day), across a
// restart: the old rows read revision 0 and the latest of the two copies
// still wins; afterwards every revision of a day is kept through merges
// (OPTIMIZE FINAL), a redelivered copy of one revision collapses, and the
// latest-revision query (docs/analytics.md) answers from the projection
// sorted by vehicle as from the table.
func TestMigrateScoreRevisions(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Start(t)
	conn := open(t, srv)
	migrateBefore(ctx, t, conn, revisionsMigration)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	ins := func(conn driver.Conn, q string, rows ...[]any) {
		t.Helper()
		b, err := conn.PrepareBatch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := b.Append(r...); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	old := func(vin string, points, offset int64) []any {
		return []any{day, vin, vin + "/2026-11-20", "d", "UTC", day, day.Add(24 * time.Hour), "v1",
			float32(50), points, []string{}, []string{}, "h", "minecart.scores", int32(0), offset}
	}
	// Two separate inserts: two parts, not merged yet.
	ins(conn, oldScoreInsert, old("V1", 100, 1), old("V2", 40, 2))
	ins(conn, oldScoreInsert, old("V1", 130, 3))

	srv2, err := srv.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Stop() })
	conn = open(t, srv2)
	if err := chmig.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var key string
	if err := conn.QueryRow(ctx, "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'daily_scores'").Scan(&key); err != nil || key != "date, vehicle_id, revision" {
		t.Fatalf("sorting key %q %v", key, err)
	}
	const latest = `SELECT vehicle_id, revision, points, late_added, release_ms FROM daily_scores
		WHERE date = '2026-11-20' ORDER BY vehicle_id, revision DESC, src_offset DESC LIMIT 1 BY vehicle_id`
	type got struct {
		vin       string
		rev       uint32
		points    int64
		late      uint64
		releaseMs int64
	}
	read := func(q string) []got {
		t.Helper()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []got
		for rows.Next() {
			var g got
			if err := rows.Scan(&g.vin, &g.rev, &g.points, &g.late, &g.releaseMs); err != nil {
				t.Fatal(err)
			}
			out = append(out, g)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(what string, g []got, want ...got) {
		t.Helper()
		if len(g) != len(want) {
			t.Fatalf("%s: %+v, want %+v", what, g, want)
		}
		for i := range g {
			if g[i] != want[i] {
				t.Fatalf("%s: %+v, want %+v", what, g, want)
			}
		}
	}
	check("old rows after the migration", read(latest), got{"V1", 0, 130, 0, 0}, got{"V2", 0, 40, 0, 0})

	// New rows: V1's revisions 1 and 2 (revision 2 delivered twice, as a
	// sink retry after a crash does), V2's revision 1 at an older offset
	// than a stray revision-0 copy: the revision decides, not the offset.
	const newInsert = `INSERT INTO daily_scores (date, vehicle_id, id, device_id, tz, window_start, window_end, config_version,
	score, points, flags, flag_reasons, events_hash, revision, release_ms, late_added, region, src_topic, src_partition, src_offset)`
	rev := func(vin string, r uint32, points, offset int64) []any {
		region := "N39E116"
		return []any{day, vin, vin + "/2026-11-20", "d", "UTC", day, day.Add(24 * time.Hour), "v1",
			float32(50), points, []string{}, []string{}, "h", r, int64(1763700000000) + int64(r), uint64(r * 10), &region,
			"minecart.scores", int32(0), offset}
	}
	ins(conn, newInsert, rev("V1", 1, 150, 10), rev("V2", 1, 45, 11))
	ins(conn, newInsert, rev("V1", 2, 170, 12), rev("V2", 0, 40, 13))
	ins(conn, newInsert, rev("V1", 2, 170, 12))
	want := []got{{"V1", 2, 170, 20, 1763700000002}, {"V2", 1, 45, 10, 1763700000001}}
	check("latest before the merge", read(latest), want...)
	if err := conn.Exec(ctx, "OPTIMIZE TABLE daily_scores FINAL SETTINGS mutations_sync = 1"); err != nil {
		t.Fatal(err)
	}
	check("latest after the merge", read(latest), want...)
	check("every revision after the merge", read(`SELECT vehicle_id, revision, points, late_added, release_ms FROM daily_scores
		ORDER BY vehicle_id, revision`),
		got{"V1", 0, 130, 0, 0}, got{"V1", 1, 150, 10, 1763700000001}, got{"V1", 2, 170, 20, 1763700000002},
		got{"V2", 0, 40, 0, 1763700000000}, got{"V2", 1, 45, 10, 1763700000001}) // V2's copies of revision 0: the greater offset
	check("latest of one vehicle (projection by_vehicle)", read(`SELECT vehicle_id, revision, points, late_added, release_ms
		FROM daily_scores WHERE vehicle_id = 'V1' AND date >= '2026-11-01' AND date <= '2026-11-30'
		ORDER BY date, revision DESC, src_offset DESC LIMIT 1 BY date`), want[0])
	// Run again (an interrupted migration is simply run again).
	ms, _ := chmig.Migrations()
	for _, m := range ms {
		if m.Version == revisionsMigration {
			for _, st := range m.Statements {
				if err := conn.Exec(ctx, st); err != nil {
					t.Fatalf("0012 again: %v", err)
				}
			}
		}
	}
}
