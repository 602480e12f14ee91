package sink

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// newColumn is a clickhouse-go column of type t, as a batch makes it.
func newColumn(t *testing.T, typ string) column.Interface {
	t.Helper()
	b := proto.Block{ServerContext: &column.ServerContext{Timezone: time.UTC}}
	if err := b.AddColumn("c", column.Type(typ)); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return b.Columns[0]
}

func encoded(c column.Interface) []byte {
	var buf chproto.Buffer
	c.Encode(&buf)
	return buf.Buf
}

// TestPresizeKeepsValues: a presized column holds exactly the rows
// appended after it (same Native bytes as without presize), for every
// type the sink sends and one it leaves alone.
func TestPresizeKeepsValues(t *testing.T) {
	const n = 1000
	f := float32(1.5)
	var (
		strs   = make([]string, n)
		times  = make([]time.Time, n)
		u64s   = make([]uint64, n)
		i32s   = make([]int32, n)
		i64s   = make([]int64, n)
		f32s   = make([]float32, n)
		bools  = make([]bool, n)
		opts   = make([]*float32, n)
		arrays = make([][]string, n)
	)
	total := 0
	for i := range n {
		strs[i] = fmt.Sprintf("VIN%014d", i%37)
		total += len(strs[i])
		times[i] = time.UnixMilli(1_700_000_000_000 + int64(i)).UTC()
		u64s[i], i32s[i], i64s[i], f32s[i], bools[i] = uint64(i)<<40, int32(-i), int64(i)*1e9, float32(i)/3, i%2 == 0
		if i%3 == 0 {
			opts[i] = &f
		}
		if i%5 == 0 {
			arrays[i] = []string{"P0301", "P0420"}
		}
	}
	for _, tc := range []struct {
		typ      string
		v        any
		strBytes int
	}{
		{"String", strs, total},
		{"String", strs, 0},
		{"DateTime64(3, 'UTC')", times, 0},
		{"UInt64", u64s, 0},
		{"Int32", i32s, 0},
		{"Int64", i64s, 0},
		{"Float32", f32s, 0},
		{"Bool", bools, 0},
		{"Nullable(Float32)", opts, 0},
		{"Array(String)", arrays, 0},
		{"LowCardinality(String)", strs, total}, // not sized
	} {
		t.Run(tc.typ, func(t *testing.T) {
			want, got := newColumn(t, tc.typ), newColumn(t, tc.typ)
			presize([]column.Interface{got}, n, []int{tc.strBytes})
			if got.Rows() != 0 {
				t.Fatalf("presized column has %d rows", got.Rows())
			}
			for _, c := range []column.Interface{want, got} {
				if rows, ok := tc.v.([][]string); ok {
					for _, r := range rows {
						if err := c.AppendRow(r); err != nil {
							t.Fatal(err)
						}
					}
				} else if _, err := c.Append(tc.v); err != nil {
					t.Fatal(err)
				}
			}
			if got.Rows() != n || !bytes.Equal(encoded(got), encoded(want)) {
				t.Fatalf("presized column: %d rows, encoding differs: %v", got.Rows(), !bytes.Equal(encoded(got), encoded(want)))
			}
		})
	}
}

// TestPresizeStopsGrowth: after presize, appending a whole column
// allocates once (clickhouse-go's null map), not once per growth step.
func TestPresizeStopsGrowth(t *testing.T) {
	const n = 100_000
	u64s := make([]uint64, n)
	times := make([]time.Time, n)
	opts := make([]*float32, n)
	strs := make([]string, n)
	total := 0
	for i := range strs {
		strs[i] = fmt.Sprintf("dev-%06d", i)
		total += len(strs[i])
	}
	mallocs := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.Mallocs - a.Mallocs
	}
	for _, tc := range []struct {
		typ      string
		v        any
		strBytes int
	}{{"UInt64", u64s, 0}, {"DateTime64(3, 'UTC')", times, 0}, {"Nullable(Float32)", opts, 0}, {"String", strs, total}} {
		plain, sized := newColumn(t, tc.typ), newColumn(t, tc.typ)
		presize([]column.Interface{sized}, n, []int{tc.strBytes})
		grown := mallocs(func() { plain.Append(tc.v) })
		once := mallocs(func() { sized.Append(tc.v) })
		if once > 3 || grown < 10 {
			t.Errorf("%s: appending %d rows took %d allocations presized, %d not", tc.typ, n, once, grown)
		}
	}
}
