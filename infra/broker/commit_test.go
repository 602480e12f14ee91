package broker_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

const (
	splitTopic = "crash.split"
	splitTxnID = "split-0"
)

// sameMarker fails unless the repair's marker (got) has kfake's bytes
// (want) but for the timestamps and what covers them: in the batch the
// CRC (@17, 4 bytes) and the first and max timestamps (@27, 16 bytes), in
// the index entry its CRC byte (@1) and max earlier timestamp (@6, 8).
func sameMarker(t *testing.T, got, want []byte, gotIdx, wantIdx []byte) {
	t.Helper()
	mask := func(b []byte, spans ...[2]int) []byte {
		b = slices.Clone(b)
		for _, s := range spans {
			if s[1] <= len(b) {
				clear(b[s[0]:s[1]])
			}
		}
		return b
	}
	if g, w := mask(got, [2]int{17, 21}, [2]int{27, 43}), mask(want, [2]int{17, 21}, [2]int{27, 43}); !slices.Equal(g, w) {
		t.Errorf("marker batch\n got % x\nwant % x", g, w)
	}
	if g, w := mask(gotIdx, [2]int{1, 2}, [2]int{6, 14}), mask(wantIdx, [2]int{1, 2}, [2]int{6, 14}); !slices.Equal(g, w) {
		t.Errorf("marker index entry\n got % x\nwant % x", g, w)
	}
}

// splitCommit runs a broker on a new directory, commits x0 (partition 0)
// and y0 (partition 1) in one transaction and x1, y1 in a second, and
// returns a copy of the directory as it is on disk while the broker runs:
// a kill -9's state. With orderly, the broker is closed and started again
// between the two transactions, so the partitions have a snapshot.json
// (kfake writes it on Close) that the second transaction made stale.
func splitCommit(t *testing.T, orderly bool) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(first bool, vals ...string) *broker.Broker {
		b := start(t, dir)
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(splitTxnID),
			kgo.DefaultProduceTopic(splitTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if first {
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, splitTopic); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < len(vals); i += 2 {
			produceTxn(ctx, t, cl, vals[i], vals[i+1])
		}
		return b
	}
	var b *broker.Broker
	if orderly {
		if err := run(true, "x0", "y0").Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "partitions", splitTopic+"-1", "snapshot.json")); err != nil {
			t.Fatalf("no snapshot after an orderly close: %v", err)
		}
		b = run(false, "x1", "y1")
	} else {
		b = run(true, "x0", "y0", "x1", "y1")
	}
	defer func() { _ = b.Close() }()
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return crashed
}

// produceTxn commits one transaction: p0 to partition 0, p1 to partition 1.
func produceTxn(ctx context.Context, t *testing.T, cl *kgo.Client, p0, p1 string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(p0), Partition: 0},
		&kgo.Record{Value: []byte(p1), Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// consumeGroup reads topic with a read_committed group consumer, as a
// stage does, until it has n records or 20 s pass, and returns their
// values in partition, offset order.
func consumeGroup(t *testing.T, brokers []string, group string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(splitTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// TestRestartCompletesCommit: a kill -9 inside kfake's endTx leaves the
// transaction's COMMIT marker on some partitions and none on the others.
// On the next start the broker commits the dangling partitions when
// another partition holds the transaction's COMMIT marker (same producer
// id and epoch), and aborts them when no partition does: a read_committed
// reader then sees the transaction on every partition or on none, a group
// consumer reads past it, and the same transactional id commits again,
// also across a second crash and reload.
func TestRestartCompletesCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		orderly bool     // an orderly restart before the second transaction
		drop    []int32  // partitions whose last marker the kill lost
		want    []string // committed after the restart
		log     string
		nolog   string
	}{
		{"commit reached partition 0 only", false, []int32{1}, []string{"x0", "x1", "y0", "y1"},
			"committed a transaction whose commit a crash cut short", "aborted a transaction"},
		{"commit reached partition 1 only", false, []int32{0}, []string{"x0", "x1", "y0", "y1"},
			"committed a transaction whose commit a crash cut short", "aborted a transaction"},
		{"commit reached no partition", false, []int32{0, 1}, []string{"x0", "y0"},
			"aborted a transaction left open by a crash", "committed a transaction"},
		{"stale snapshots, commit reached partition 0 only", true, []int32{1}, []string{"x0", "x1", "y0", "y1"},
			"committed a transaction whose commit a crash cut short", "aborted a transaction"},
		{"stale snapshots, commit reached no partition", true, []int32{0, 1}, []string{"x0", "y0"},
			"aborted a transaction left open by a crash", "committed a transaction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := splitCommit(t, tc.orderly)
			dropped := map[int32][2][]byte{}
			for _, p := range tc.drop {
				b, i, err := kafkatest.DropLastMarker(dir, splitTopic, p)
				if err != nil {
					t.Fatal(err)
				}
				dropped[p] = [2][]byte{b, i}
			}
			var logs strings.Builder
			b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dir,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b.Close() }()
			if len(tc.drop) == 1 { // the repair wrote kfake's marker
				p := tc.drop[0]
				pdir := filepath.Join(dir, "partitions", splitTopic+"-"+strconv.Itoa(int(p)))
				raw, err := os.ReadFile(filepath.Join(pdir, "0.dat"))
				if err != nil {
					t.Fatal(err)
				}
				idx, err := os.ReadFile(filepath.Join(pdir, "0.idx"))
				if err != nil {
					t.Fatal(err)
				}
				want := dropped[p]
				sameMarker(t, raw[len(raw)-len(want[0]):], want[0], idx[len(idx)-15:], want[1])
				if _, err := os.Stat(filepath.Join(pdir, "snapshot.json")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("snapshot.json of the repaired partition: %v, want removed", err)
				}
			}
			if !strings.Contains(logs.String(), tc.log) || strings.Contains(logs.String(), tc.nolog) {
				t.Errorf("logs %q: want %q, not %q", logs.String(), tc.log, tc.nolog)
			}
			for p := range int32(2) {
				tail := kafkatest.DanglingTail(t, b.Addrs(), splitTopic, p)
				if len(tail.Dangling) != 0 || tail.LastStableOffset != tail.HighWatermark {
					t.Fatalf("partition %d after the restart: tail %+v, want no dangling record", p, tail)
				}
			}
			if got := readCommitted(t, b.Addrs(), splitTopic); !slices.Equal(got, tc.want) {
				t.Fatalf("committed after the restart %q, want %q", got, tc.want)
			}

			// The same transactional id commits again (same producer id).
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(splitTxnID),
				kgo.DefaultProduceTopic(splitTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			produceTxn(ctx, t, cl, "x2", "y2")
			want := slices.Clone(tc.want)
			want = slices.Insert(want, slices.Index(want, "y0"), "x2")
			want = append(want, "y2")
			if got := readCommitted(t, b.Addrs(), splitTopic); !slices.Equal(got, want) {
				t.Fatalf("committed after a new transaction: %q, want %q", got, want)
			}
			if got := consumeGroup(t, b.Addrs(), "split-reader", len(want)); !slices.Equal(got, want) {
				t.Fatalf("group consumer read %q, want %q", got, want)
			}

			// A second crash (the directory as it is now) and reload.
			if got := committedAfterCrash(t, dir); !slices.Equal(got, want) {
				t.Fatalf("committed after a second crash %q, want %q", got, want)
			}
		})
	}
}

// TestIndexEntryLost: a kill -9 between kfake's write of a transactional
// batch to its segment and the write of its index entry, in a transaction
// no partition committed. The restart aborts it and the same producer
// commits the next one; a second crash and reload must still read the
// aborted records as aborted. Without the index repair (index.go) the
// marker's and the next batches' entries land one slot early, the reload
// takes x1 for a non-transactional batch and shows it.
func TestIndexEntryLost(t *testing.T) {
	dir := splitCommit(t, false)
	for p := range int32(2) {
		if _, _, err := kafkatest.DropLastMarker(dir, splitTopic, p); err != nil {
			t.Fatal(err)
		}
	}
	idx := filepath.Join(dir, "partitions", splitTopic+"-0", "0.idx")
	fi, err := os.Stat(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(idx, fi.Size()-15); err != nil { // x1's entry
		t.Fatal(err)
	}
	var logs strings.Builder
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if !strings.Contains(logs.String(), "rebuilt a segment index") || !strings.Contains(logs.String(), splitTopic+"-0") {
		t.Errorf("logs %q: want the index of %s-0 rebuilt", logs.String(), splitTopic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(splitTxnID),
		kgo.DefaultProduceTopic(splitTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceTxn(ctx, t, cl, "x2", "y2")
	want := []string{"x0", "x2", "y0", "y2"}
	if got := readCommitted(t, b.Addrs(), splitTopic); !slices.Equal(got, want) {
		t.Fatalf("committed after the restart %q, want %q", got, want)
	}

	if got := committedAfterCrash(t, dir); !slices.Equal(got, want) {
		t.Fatalf("committed after a second crash %q, want %q", got, want)
	}
}

// committedAfterCrash copies the running broker's directory dir (a kill's
// state), starts a broker on the copy and returns what read_committed
// reads of the split topic there.
func committedAfterCrash(t *testing.T, dir string) []string {
	t.Helper()
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: crashed,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	return readCommitted(t, b.Addrs(), splitTopic)
}
