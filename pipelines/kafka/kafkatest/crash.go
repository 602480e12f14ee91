package kafkatest

import (
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// CrashedBroker returns the seed brokers of a broker in the state a crash
// of kfake leaves behind. build runs against an embedded broker with a
// data directory (every Topology topic plus extra) and may leave
// transactions open; the directory is then copied as it is on disk at that
// moment (what kill -9 leaves: kfake writes every batch as it comes and
// its transaction state only on Close), and a bare kfake, not
// infra/broker, whose Start repairs such a directory, is started on the
// copy. kfake's reload drops the open transactions without writing abort
// markers: each leaves a dangling tail (DanglingTail), the state behind
// the stall of docs/reliability.md. The broker is closed when the test
// ends.
func CrashedBroker(t testing.TB, build func(brokers []string), extra ...pipelines.TopicSpec) []string {
	t.Helper()
	live := t.TempDir()
	b := StartBroker(t, live, extra...)
	build(b.Addrs())
	crashed := t.TempDir()
	if err := copyDir(live, crashed); err != nil {
		b.Close()
		t.Fatalf("copy data dir: %v", err)
	}
	_ = b.Close() // writes its orderly state into live, not into the copy
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }),
		kfake.DataDir(crashed),
		kfake.GroupMinSessionTimeout(250*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("start kfake on the crashed directory: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// copyDir copies the regular files of src into dst, keeping the tree.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Tail is the end of a partition's log as a read_uncommitted reader and
// the offset listings see it.
type Tail struct {
	HighWatermark    int64
	LastStableOffset int64
	// Dangling are the offsets of the transactional data records after
	// the partition's last control record (commit or abort marker) of
	// their producer, when the partition's last record is one of them.
	Dangling []int64
}

// DanglingTail returns the tail of topic/p. A dangling tail is one whose
// Dangling records lie below the last stable offset: a transaction neither
// committed nor aborted that read_committed readers skip but that no
// marker ends.
func DanglingTail(t testing.TB, brokers []string, topic string, p int32) Tail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lsos, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hwm, _ := ends.Lookup(topic, p)
	lso, _ := lsos.Lookup(topic, p)
	tail := Tail{HighWatermark: hwm.Offset, LastStableOffset: lso.Offset}
	var last *kgo.Record
	open := map[int64][]int64{} // producer -> offsets since its last marker
	for last == nil || last.Offset < hwm.Offset-1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s/%d to %d: %v", topic, p, hwm.Offset, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			last = r
			switch {
			case r.Attrs.IsControl():
				delete(open, r.ProducerID)
			case r.Attrs.IsTransactional():
				open[r.ProducerID] = append(open[r.ProducerID], r.Offset)
			}
		})
	}
	if !last.Attrs.IsControl() && last.Attrs.IsTransactional() {
		tail.Dangling = slices.Clone(open[last.ProducerID])
	}
	return tail
}
