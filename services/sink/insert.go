package sink

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// wireTypes gives clickhouse-go each insert's column types up front, as
// they are sent rather than as they are stored: LowCardinality(T) columns
// go over the wire as plain T and the server builds the dictionary (Native
// input converts types, on a ClickHouse server as in chDB). clickhouse-go
// appends LowCardinality values one at a time through reflection and a map
// keyed by interface values, which cost the sink more CPU than all its
// other columns together; given the types, its HTTP transport also skips a
// DESCRIBE TABLE round trip per batch. (The native protocol takes its block
// structure from the server and ignores them.)
type wireTypes struct {
	mu    sync.Mutex
	types map[string][]clickhouse.ColumnNameAndType // by INSERT statement
}

// context returns ctx carrying the wire types of insert, read with
// DESCRIBE TABLE the first time.
func (wt *wireTypes) context(ctx context.Context, conn driver.Conn, insert string) (context.Context, error) {
	wt.mu.Lock()
	cols, ok := wt.types[insert]
	wt.mu.Unlock()
	if !ok {
		var err error
		if cols, err = describeInsert(ctx, conn, insert); err != nil {
			return nil, err
		}
		wt.mu.Lock()
		if wt.types == nil {
			wt.types = map[string][]clickhouse.ColumnNameAndType{}
		}
		wt.types[insert] = cols
		wt.mu.Unlock()
	}
	return clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(cols)), nil
}

// forget drops the types of insert (after a failed insert: the table may
// have changed).
func (wt *wireTypes) forget(insert string) {
	wt.mu.Lock()
	delete(wt.types, insert)
	wt.mu.Unlock()
}

// describeInsert reads the types of the columns of an
// "INSERT INTO table (a, b, ...)" statement.
func describeInsert(ctx context.Context, conn driver.Conn, insert string) ([]clickhouse.ColumnNameAndType, error) {
	table, cols, err := parseInsert(insert)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ?", table)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("describe %s: %w", table, err)
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	out := make([]clickhouse.ColumnNameAndType, len(cols))
	for i, c := range cols {
		typ, ok := types[c]
		if !ok {
			return nil, fmt.Errorf("describe %s: no column %s", table, c)
		}
		out[i] = clickhouse.ColumnNameAndType{Name: c, Type: plainType(typ)}
	}
	return out, nil
}

// parseInsert splits "INSERT INTO table (a, b, ...)" into its parts.
func parseInsert(insert string) (table string, cols []string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(insert), "INSERT INTO ")
	open := strings.IndexByte(rest, '(')
	if !ok || open < 0 || !strings.HasSuffix(rest, ")") {
		return "", nil, fmt.Errorf("sink: unexpected insert statement %.40q", insert)
	}
	table = strings.TrimSpace(rest[:open])
	for _, c := range strings.Split(rest[open+1:len(rest)-1], ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return table, cols, nil
}

// plainType is typ with every LowCardinality(T) replaced by T.
func plainType(typ string) string {
	const lc = "LowCardinality("
	for {
		i := strings.Index(typ, lc)
		if i < 0 {
			return typ
		}
		depth, j := 1, i+len(lc)
		for ; j < len(typ) && depth > 0; j++ {
			switch typ[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		if depth != 0 {
			return typ
		}
		typ = typ[:i] + typ[i+len(lc):j-1] + typ[j:]
	}
}
