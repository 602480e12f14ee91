package clickhouse_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chmig "github.com/minecart/minecart/infra/clickhouse"
)

func open(t testing.TB, srv *chtest.Server) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Writer.Name, Password: srv.Writer.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestMigrateIdempotent(t *testing.T) {
	srv := chtest.Start(t)
	conn := open(t, srv)
	ctx := context.Background()
	ms, err := chmig.Migrations()
	if err != nil || len(ms) < 3 {
		t.Fatalf("migrations: %d %v", len(ms), err)
	}
	for i := 0; i < 2; i++ {
		if err := chmig.Migrate(ctx, conn); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	applied, err := chmig.Applied(ctx, conn)
	if err != nil || len(applied) != len(ms) {
		t.Fatalf("applied %v %v", applied, err)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM schema_migrations FINAL").Scan(&rows); err != nil || rows != uint64(len(ms)) {
		t.Fatalf("schema_migrations rows %d %v", rows, err)
	}
	for _, tbl := range []string{"telemetry", "telemetry_hourly", "fleet_daily", "daily_scores", "ledger_entries", "redemptions", "points_daily", "sink_offsets"} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", tbl).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: %d %v", tbl, n, err)
		}
	}
	// A migration edited after it was applied is refused.
	if err := conn.Exec(ctx, "INSERT INTO schema_migrations VALUES (1, 'telemetry', 'edited', now64(3))"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE schema_migrations FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := chmig.Migrate(ctx, conn); err == nil {
		t.Fatal("changed migration accepted")
	}
}

func TestSplitStatements(t *testing.T) {
	got := chmig.SplitStatements("-- c;\nCREATE TABLE a\n(x UInt8);\n\nSELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a\n(x UInt8)", "SELECT 1", "SELECT 2"}
	if len(got) != len(want) {
		t.Fatalf("%q", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q", got)
		}
	}
}

// TestMigrateWhenUpRetries: while ClickHouse does not answer, MigrateWhenUp
// logs each failure and tries again until ctx is done.
func TestMigrateWhenUpRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody answers there
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var logs strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err = chmig.MigrateWhenUp(ctx, conn, slog.New(slog.NewTextHandler(&logs, nil)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("MigrateWhenUp with nobody answering: %v, want the ctx's deadline", err)
	}
	if n := strings.Count(logs.String(), "clickhouse not ready; retrying"); n < 2 {
		t.Fatalf("%d failures logged, want at least 2:\n%s", n, logs.String())
	}
}
