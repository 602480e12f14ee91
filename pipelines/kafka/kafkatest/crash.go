package kafkatest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	return CrashedBrokerEdit(t, build, nil, extra...)
}

// CrashedBrokerEdit is CrashedBroker with edit (when not nil) run on the
// copied directory before kfake loads it: to build on-disk states a crash
// at one precise instant leaves (DropLastOffsetCommit).
func CrashedBrokerEdit(t testing.TB, build func(brokers []string), edit func(dir string), extra ...pipelines.TopicSpec) []string {
	t.Helper()
	crashed := CrashedDir(t, build, edit, extra...)
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

// CrashedDir returns a data directory in the state a crash leaves: build
// runs against an embedded broker (infra/broker) on a new directory, which
// is then copied as it is on disk at that moment, and edit (when not nil)
// runs on the copy. No broker runs on the copy: StartBroker on it
// exercises infra/broker's start-up repair, CrashedBrokerEdit a bare kfake.
func CrashedDir(t testing.TB, build func(brokers []string), edit func(dir string), extra ...pipelines.TopicSpec) string {
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
	if edit != nil {
		edit(crashed)
	}
	return crashed
}

// DropLastMarker removes from kfake's data directory dir the last batch of
// topic/p, which must be a control batch (a transaction marker), and its
// index entry: the directory a kill -9 leaves when kfake's EndTxn (txns.go
// endTx, which appends the markers partition by partition and keeps no
// transaction log) had written the markers of other partitions but not
// this one's. It returns the removed batch and index entry.
//
// The last segment is partitions/<url-escaped topic>-<p>/<base>.dat with
// the highest base: record batches back to back (length: int32 big endian
// @8, not counting the first 12 bytes; attributes: int16 @21, 0x20
// control). Its <base>.idx holds one 15-byte entry per batch.
func DropLastMarker(dir, topic string, p int32) (batch, idx []byte, err error) {
	pdir := filepath.Join(dir, "partitions", url.PathEscape(topic)+"-"+strconv.Itoa(int(p)))
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return nil, nil, err
	}
	base := int64(-1)
	for _, e := range entries {
		if s, ok := strings.CutSuffix(e.Name(), ".dat"); ok {
			if b, err := strconv.ParseInt(s, 10, 64); err == nil && b > base {
				base = b
			}
		}
	}
	dat := filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat")
	raw, err := os.ReadFile(dat)
	if err != nil {
		return nil, nil, err
	}
	var last, n int
	for pos := 0; pos+12 <= len(raw); n++ {
		last = pos
		pos += 12 + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
	}
	if n == 0 || last+23 > len(raw) || raw[last+22]&0x20 == 0 {
		return nil, nil, fmt.Errorf("%s: the last batch is not a marker", dat)
	}
	idxPath := filepath.Join(pdir, strconv.FormatInt(base, 10)+".idx")
	idxRaw, err := os.ReadFile(idxPath)
	if err != nil {
		return nil, nil, err
	}
	if len(idxRaw) != 15*n {
		return nil, nil, fmt.Errorf("%s: %d bytes for %d batches", idxPath, len(idxRaw), n)
	}
	if err := os.Truncate(dat, int64(last)); err != nil {
		return nil, nil, err
	}
	if err := os.Truncate(idxPath, int64(15*(n-1))); err != nil {
		return nil, nil, err
	}
	return raw[last:], idxRaw[15*(n-1):], nil
}

// DropLastOffsetCommit removes from kfake's groups.log in dir the last
// offset commit of group for topic/p, so that the group's committed offset
// goes back to the one before. That is the directory a kill -9 of kfake
// leaves when it strikes inside EndTxn after the commit markers were
// written and before the transaction's offsets were (txns.go endTx writes
// the markers first, then appends the offsets to groups.log, and keeps no
// transaction log): the outputs committed, the input offsets not. It
// returns the offset dropped and the one the group is back at (-1: none).
//
// groups.log is a sequence of entries: 4 bytes length L (little endian,
// version + data), 4 bytes CRC-32C of version + data, 2 bytes version,
// then L-2 bytes of JSON ({"type":"commit","g":group,"t":topic,"p":p,
// "o":offset,...} for a commit). Entries are copied byte for byte, the
// dropped one left out.
func DropLastOffsetCommit(dir, group, topic string, p int32) (dropped, now int64, err error) {
	path := filepath.Join(dir, "groups.log")
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	type entry struct {
		Type   string `json:"type"`
		Group  string `json:"g"`
		Topic  string `json:"t"`
		Part   int32  `json:"p"`
		Offset int64  `json:"o"`
	}
	var spans [][2]int // entries [start, end) in raw
	var commits []int  // indexes in spans of group's commits of topic/p
	var offsets []int64
	for pos := 0; pos+10 <= len(raw); {
		n := int(binary.LittleEndian.Uint32(raw[pos:]))
		end := pos + 8 + n
		if n < 2 || end > len(raw) {
			break
		}
		var e entry
		if json.Unmarshal(raw[pos+10:end], &e) == nil && e.Type == "commit" && e.Group == group && e.Topic == topic && e.Part == p {
			commits = append(commits, len(spans))
			offsets = append(offsets, e.Offset)
		}
		spans = append(spans, [2]int{pos, end})
		pos = end
	}
	if len(commits) == 0 {
		return 0, 0, fmt.Errorf("groups.log: no commit of group %s for %s/%d", group, topic, p)
	}
	drop := commits[len(commits)-1]
	dropped, now = offsets[len(offsets)-1], -1
	if len(offsets) > 1 {
		now = offsets[len(offsets)-2]
	}
	var out []byte
	for i, sp := range spans {
		if i != drop {
			out = append(out, raw[sp[0]:sp[1]]...)
		}
	}
	return dropped, now, os.WriteFile(path, out, 0o644)
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
