package chserver_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Results larger than the server's buffer (16 MiB) are streamed.

func TestStreamLargeResult(t *testing.T) {
	conn := connect(t)
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT number, toString(number) AS s FROM numbers(3000000)")
	if err != nil {
		t.Fatal(err)
	}
	var n, sum uint64
	for rows.Next() {
		var x uint64
		var s string
		if err := rows.Scan(&x, &s); err != nil {
			t.Fatal(err)
		}
		n++
		sum += x
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if n != 3_000_000 || sum != 3_000_000*2_999_999/2 {
		t.Fatalf("%d rows, sum %d", n, sum)
	}

	// The same over plain HTTP in TabSeparated: chunked, no Content-Length.
	res, err := http.Get(server(t).URL() + "/?query=SELECT+number,+toString(number)+FROM+numbers(3000000)")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ContentLength != -1 || res.StatusCode != 200 {
		t.Fatalf("status %d content length %d", res.StatusCode, res.ContentLength)
	}
	sc := bufio.NewScanner(res.Body)
	lines := 0
	for sc.Scan() {
		lines++
	}
	if lines != 3_000_000 || sc.Err() != nil {
		t.Fatalf("%d lines, %v", lines, sc.Err())
	}
}

func TestStreamErrorMidway(t *testing.T) {
	conn := connect(t)
	rows, err := conn.Query(context.Background(),
		"SELECT number, repeat('x', 20) AS s, throwIf(number = 2500000, 'boom') AS t FROM numbers(3000000)")
	if err != nil {
		t.Fatalf("query: %v", err) // the failure must come after the first 16 MiB
	}
	for rows.Next() {
	}
	var ex *clickhouse.Exception
	if err := rows.Err(); !errors.As(err, &ex) || ex.Code != 395 {
		t.Fatalf("mid-stream error: %v", err)
	}
	rows.Close()
}

// TestStreamCancel: a client that goes away stops an endless query inside
// the engine, which then serves the next query.
func TestStreamCancel(t *testing.T) {
	conn := connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	rows, err := conn.Query(ctx, "SELECT number FROM system.numbers")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100_000 && rows.Next(); i++ {
	}
	cancel()
	for rows.Next() {
	}
	rows.Close()
	next, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	var n uint8
	if err := conn.QueryRow(next, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("after cancel: %d %v", n, err)
	}
}
