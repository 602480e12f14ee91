package chserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/infra/chserver/chtest"
)

// srv is one server process shared by the package's tests (starting one
// costs ~0.3 s and ~200 MB); each test uses its own tables.
var srv *chtest.Server

func TestMain(m *testing.M) {
	if os.Getenv("CHSERVER_SIGNAL_CHILD") != "" { // TestGoPanicsSurviveEngine's child
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "chserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = chtest.Run(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chserver tests skipped:", err)
		srv = nil
	}
	code := m.Run()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "chserver stop:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func server(t testing.TB) *chtest.Server {
	t.Helper()
	if srv == nil {
		t.Skip("libchdb.so not installed (infra/chdb/install.sh)")
	}
	return srv
}

func connect(t testing.TB) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:     []string{server(t).Addr},
		Protocol: clickhouse.HTTP,
		Auth:     clickhouse.Auth{Username: server(t).Admin.Name, Password: server(t).Admin.Password},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func exec(t testing.TB, conn driver.Conn, sql string) {
	t.Helper()
	if err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestPingVersionAndErrors(t *testing.T) {
	conn := connect(t)
	ctx := context.Background()
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.Major < 24 || v.Revision < 54460 || v.Timezone == nil {
		t.Fatalf("server version %v revision %d tz %v", v.Version, v.Revision, v.Timezone)
	}
	for _, tc := range []struct {
		sql    string
		code   int32
		status int
	}{
		{"SELEC 1", 62, 400},
		{"SELECT * FROM no_such_table", 60, 404},
		{"SELECT no_such_function(1)", 46, 404},
		{"SELECT 1 SETTINGS no_such_setting = 1", 115, 404},
		{"INSERT INTO no_such_table VALUES (1)", 60, 404},
	} {
		err := conn.Exec(ctx, tc.sql)
		var ex *clickhouse.Exception
		var he *clickhouse.HTTPError
		if !errors.As(err, &ex) || ex.Code != tc.code || !errors.As(err, &he) || he.StatusCode != tc.status {
			t.Errorf("%s: got %v, want code %d status %d", tc.sql, err, tc.code, tc.status)
		}
		// The same errors from Query.
		if rows, err := conn.Query(ctx, tc.sql); err == nil {
			rows.Close()
			t.Errorf("%s: Query succeeded", tc.sql)
		} else if !errors.As(err, &ex) || ex.Code != tc.code {
			t.Errorf("%s: Query got %v", tc.sql, err)
		}
	}
	// The server keeps serving after errors.
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT sum(number) FROM numbers(1000)").Scan(&n); err != nil || n != 499500 {
		t.Fatalf("sum = %d, %v", n, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	conn := connect(t)
	ctx := context.Background()
	exec(t, conn, "CREATE TABLE conc (c UInt32, i UInt32) ENGINE = MergeTree ORDER BY (c, i)")
	const clients, batches, rows = 8, 5, 1000
	errs := make(chan error, clients)
	for c := range clients {
		go func() {
			errs <- func() error {
				conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{server(t).Addr}, Protocol: clickhouse.HTTP,
					Auth: clickhouse.Auth{Username: server(t).Admin.Name, Password: server(t).Admin.Password}})
				if err != nil {
					return err
				}
				defer conn.Close()
				for b := range batches {
					batch, err := conn.PrepareBatch(ctx, "INSERT INTO conc")
					if err != nil {
						return err
					}
					for i := range rows {
						if err := batch.Append(uint32(c), uint32(b*rows+i)); err != nil {
							return err
						}
					}
					if err := batch.Send(); err != nil {
						return err
					}
					var n uint64
					if err := conn.QueryRow(ctx, "SELECT count() FROM conc WHERE c = ?", uint32(c)).Scan(&n); err != nil {
						return err
					}
					if n != uint64((b+1)*rows) {
						return fmt.Errorf("client %d: %d rows after batch %d", c, n, b)
					}
				}
				return nil
			}()
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	var n, distinct uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(c, i) FROM conc").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != clients*batches*rows || distinct != n {
		t.Fatalf("count %d distinct %d", n, distinct)
	}
}

func TestContextCancel(t *testing.T) {
	conn := connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var x uint8
		done <- conn.QueryRow(ctx, "SELECT sleep(2)").Scan(&x)
	}()
	// Queue a second query behind the sleeping one and cancel both.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- conn.Exec(ctx2, "SELECT 1") }()
	cancel()
	cancel2()
	for _, ch := range []chan error{done, done2} {
		if err := <-ch; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled query: %v", err)
		}
	}
	// The engine serves again once the running statement ends.
	var n uint8
	if err := conn.QueryRow(context.Background(), "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("after cancel: %d %v", n, err)
	}
	_ = bytes.MinRead
}

// TestCompression drives the server with clickhouse-go's HTTP compression
// modes: ClickHouse block compression (compress=1/decompress=1) and HTTP
// Content-Encoding.
func TestCompression(t *testing.T) {
	ctx := context.Background()
	exec(t, connect(t), "CREATE TABLE comp (m String, i UInt64, s String) ENGINE = MergeTree ORDER BY (m, i)")
	for _, m := range []clickhouse.CompressionMethod{clickhouse.CompressionLZ4, clickhouse.CompressionZSTD,
		clickhouse.CompressionGZIP, clickhouse.CompressionDeflate, clickhouse.CompressionBrotli} {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{server(t).Addr}, Protocol: clickhouse.HTTP,
			Auth:        clickhouse.Auth{Username: server(t).Admin.Name, Password: server(t).Admin.Password},
			Compression: &clickhouse.Compression{Method: m}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO comp")
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		for i := range 50_000 {
			if err := batch.Append(m.String(), uint64(i), "some repetitive text to compress"); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatalf("%v send: %v", m, err)
		}
		var n, sum uint64
		if err := conn.QueryRow(ctx, "SELECT count(), sum(i) FROM comp WHERE m = ?", m.String()).Scan(&n, &sum); err != nil {
			t.Fatalf("%v query: %v", m, err)
		}
		if n != 50_000 || sum != 50_000*49_999/2 {
			t.Fatalf("%v: %d rows, sum %d", m, n, sum)
		}
		var ss []struct {
			S string `ch:"s"`
		}
		if err := conn.Select(ctx, &ss, "SELECT s FROM comp WHERE m = ? LIMIT 70000", m.String()); err != nil || len(ss) != 50_000 || ss[0].S == "" {
			t.Fatalf("%v select: %d %v", m, len(ss), err)
		}
		var ex *clickhouse.Exception
		if err := conn.Exec(ctx, "SELECT * FROM no_such_table"); !errors.As(err, &ex) || ex.Code != 60 {
			t.Fatalf("%v error: %v", m, err)
		}
	}
}
