package broker

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// batchHeader is a v2 record batch header of a batch with no records.
func batchHeader(first int64, lastDelta int32, attrs uint16, pid int64, epoch int16) []byte {
	h := make([]byte, batchHeaderLen)
	binary.BigEndian.PutUint64(h[0:8], uint64(first))
	binary.BigEndian.PutUint32(h[8:12], batchHeaderLen-12)
	h[16] = 2
	binary.BigEndian.PutUint16(h[21:23], attrs)
	binary.BigEndian.PutUint32(h[23:27], uint32(lastDelta))
	binary.BigEndian.PutUint64(h[43:51], uint64(pid))
	binary.BigEndian.PutUint16(h[51:53], uint16(epoch))
	return h
}

// TestScanOpenTxns: per partition, a producer's transactional batches that
// no control batch of the same producer follows are open; a commit or
// abort marker closes them; idempotent batches and a torn last batch are
// not transactions.
func TestScanOpenTxns(t *testing.T) {
	dir := t.TempDir()
	write := func(part string, base int64, batches ...[]byte) {
		t.Helper()
		pdir := filepath.Join(dir, "partitions", part)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b []byte
		for _, x := range batches {
			b = append(b, x...)
		}
		if err := os.WriteFile(filepath.Join(pdir, formatBase(base)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const a, c, idem = 11, 22, 33
	write("minecart.ledger.changelog-0", 0,
		batchHeader(0, 4, attrTxn, a, 1),     // a's first transaction
		batchHeader(5, 0, attrControl, a, 1), // committed
		batchHeader(6, 1, attrTxn, a, 2),     // a's second: open
		batchHeader(8, 2, attrTxn, c, 0),     // c: open, then closed in the next segment
		batchHeader(11, 0, 0, idem, 0),       // idempotent, not transactional
	)
	write("minecart.ledger.changelog-0", 12,
		batchHeader(12, 0, attrTxn, a, 2), // a's second goes on
		batchHeader(13, 0, attrControl, c, 0),
		batchHeader(14, 3, attrTxn, c, 1)[:30], // torn: ignored
	)
	write("a%2Fb-3", 0, batchHeader(0, 0, attrTxn, c, 5)) // an escaped topic name
	got, err := scanOpenTxns(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []OpenTxn{
		{Topic: "a/b", Partition: 3, ProducerID: c, Epoch: 5, FirstOffset: 0, LastOffset: 0},
		{Topic: "minecart.ledger.changelog", Partition: 0, ProducerID: a, Epoch: 2, FirstOffset: 6, LastOffset: 12},
	}
	if len(got) != len(want) {
		t.Fatalf("open %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("open[%d] %+v, want %+v", i, got[i], want[i])
		}
	}
	if open, err := scanOpenTxns(filepath.Join(dir, "none")); err != nil || len(open) != 0 {
		t.Fatalf("no data dir: %v %v", open, err)
	}
}

func formatBase(base int64) string { return strconv.FormatInt(base, 10) + ".dat" }

// FuzzScanSegment: any segment bytes scan without a panic or an error.
func FuzzScanSegment(f *testing.F) {
	f.Add(batchHeader(0, 1, attrTxn, 7, 0))
	f.Add(append(batchHeader(0, 1, attrTxn, 7, 0), batchHeader(2, 0, attrControl, 7, 0)...))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	path := filepath.Join(f.TempDir(), "0.dat")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := scanSegment(path, map[int64]*OpenTxn{}); err != nil {
			t.Fatal(err)
		}
	})
}
