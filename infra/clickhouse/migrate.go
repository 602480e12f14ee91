// Package clickhouse holds minecart's ClickHouse schema as ordered SQL
// migrations (migrations/NNNN_name.sql, embedded) and Migrate, which applies
// the ones a database has not seen yet, through clickhouse-go/v2 (native
// protocol against a server, HTTP against the embedded infra/chserver);
// MigrateWhenUp retries it until ClickHouse answers (services start-up).
//
// Every statement is idempotent (IF NOT EXISTS), so a migration interrupted
// half-way is simply run again; a migration is recorded in
// schema_migrations with its checksum once all its statements succeeded,
// and an applied migration whose file changed afterwards is an error
// (write a new migration instead).
package clickhouse

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var files embed.FS

// Migration is one migration file.
type Migration struct {
	Version    uint32
	Name       string
	SQL        string
	Checksum   string // hex SHA-256 of SQL
	Statements []string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[uint32]string{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", n)
		}
		if prev, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, n, v)
		}
		seen[uint32(v)] = n
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: uint32(v), Name: name, SQL: string(b),
			Checksum: hex.EncodeToString(sum[:]), Statements: SplitStatements(string(b))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// SplitStatements splits a migration into statements: a statement ends
// with a line whose last non-blank character is ';'. Lines starting with
// "--" are comments.
func SplitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version`

// Migrate applies every migration the database behind conn has not
// recorded yet, in order. It is safe to run at every start-up and from
// several processes at once (statements are idempotent; a version recorded
// twice collapses into one row).
func Migrate(ctx context.Context, conn driver.Conn) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	if err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("migrate: schema_migrations: %w", err)
	}
	applied, err := Applied(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return fmt.Errorf("migrate: %04d_%s changed after it was applied (checksum %s, now %s); add a new migration instead",
					m.Version, m.Name, short(sum), short(m.Checksum))
			}
			continue
		}
		for i, st := range m.Statements {
			if err := conn.Exec(ctx, st); err != nil {
				return fmt.Errorf("migrate: %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
			m.Version, m.Name, m.Checksum, time.Now().UTC()); err != nil {
			return fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// MigrateWhenUp is Migrate retried with backoff (at most 10s apart) while it
// fails, as when ClickHouse does not answer yet, until it succeeds or ctx
// is done (it then returns ctx's error). Each failure is logged at warn
// level.
func MigrateWhenUp(ctx context.Context, conn driver.Conn, log *slog.Logger) error {
	for attempt := 0; ; attempt++ {
		err := Migrate(ctx, conn)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		d := min(100*time.Millisecond<<min(attempt, 10), 10*time.Second)
		log.Warn("clickhouse not ready; retrying", "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Applied returns the recorded migrations: version -> checksum.
func Applied(ctx context.Context, conn driver.Conn) (map[uint32]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		out[v] = sum
	}
	return out, rows.Err()
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
