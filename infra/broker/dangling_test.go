package broker

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
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

// realBatch is a CRC-valid v2 batch as kfake stores it: one record with
// value v, or, with control set, one COMMIT (commit) or ABORT marker.
func realBatch(first int64, attrs int16, pid int64, epoch int16, control, commit bool) []byte {
	rec := kmsg.Record{Value: []byte("v")}
	if control {
		key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeAbort}
		if commit {
			key.Type = kmsg.ControlRecordKeyTypeCommit
		}
		m := kmsg.EndTxnMarker{}
		rec = kmsg.Record{Key: key.AppendTo(nil), Value: m.AppendTo(nil)}
		attrs |= attrControl | attrTxn
	}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	b := kmsg.RecordBatch{FirstOffset: first, Magic: 2, Attributes: attrs, ProducerID: pid,
		ProducerEpoch: epoch, FirstSequence: -1, NumRecords: 1, Records: rec.AppendTo(nil)}
	enc := b.AppendTo(nil)
	binary.BigEndian.PutUint32(enc[8:12], uint32(len(enc)-12))
	binary.BigEndian.PutUint32(enc[17:21], crc32.Checksum(enc[21:], crc32c))
	return enc
}

// TestCommitDecided: a dangling (producer id, epoch) is committed only
// when another partition holds a COMMIT marker of that producer id and
// epoch closing data batches of that epoch, and the pair names one
// transaction.
func TestCommitDecided(t *testing.T) {
	const pid = 7
	data := func(off int64, e int16) []byte { return realBatch(off, attrTxn, pid, e, false, false) }
	mark := func(off int64, e int16, commit bool) []byte { return realBatch(off, 0, pid, e, true, commit) }
	for _, tc := range []struct {
		name   string
		a, b   [][]byte // partitions t-0 and t-1; t-1 ends dangling
		commit bool
	}{
		{"commit marker on the other partition", [][]byte{data(0, 3), mark(1, 3, true)}, [][]byte{data(0, 3)}, true},
		{"abort marker on the other partition", [][]byte{data(0, 3), mark(1, 3, false)}, [][]byte{data(0, 3)}, false},
		{"no marker anywhere", [][]byte{data(0, 3)}, [][]byte{data(0, 3)}, false},
		{"commit of an earlier epoch", [][]byte{data(0, 2), mark(1, 2, true)}, [][]byte{data(0, 3)}, false},
		{"commit marker that closes no data there", [][]byte{data(0, 2), mark(1, 2, true), mark(2, 3, true)}, [][]byte{data(0, 3)}, false},
		{"epoch closed twice on one partition", [][]byte{data(0, 3), mark(1, 3, true), data(2, 3), mark(3, 3, true)}, [][]byte{data(0, 3)}, false},
		{"range of two epochs on the dangling partition", [][]byte{data(0, 3), mark(1, 3, true)}, [][]byte{data(0, 2), data(1, 3)}, false},
		{"commit closing a range of two epochs", [][]byte{data(0, 2), data(1, 3), mark(2, 3, true)}, [][]byte{data(0, 3)}, false},
		{"epoch closed before on the dangling partition", [][]byte{data(0, 3), mark(1, 3, true)}, [][]byte{data(0, 3), mark(1, 3, true), data(2, 3)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, batches := range [][][]byte{tc.a, tc.b} {
				pdir := filepath.Join(dir, "partitions", "t-"+strconv.Itoa(i))
				if err := os.MkdirAll(pdir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(pdir, "0.dat"), slices.Concat(batches...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := scanLog(dir)
			if err != nil {
				t.Fatal(err)
			}
			commit, rest := commitDecided(s)
			open := slices.Concat(commit, rest)
			if len(open) == 0 || open[len(open)-1].Partition != 1 {
				t.Fatalf("open %+v: want the tail of t-1", open)
			}
			if got := len(commit) == 1 && commit[0].Partition == 1; got != tc.commit {
				t.Fatalf("commit %+v rest %+v, want commit %v", commit, rest, tc.commit)
			}
		})
	}
}

// TestAppendCommitMarker: the marker goes after the last whole batch (a
// torn tail is cut as kfake's load would), at the high watermark, with the
// index completed for a batch whose entry the kill lost; the snapshot is
// removed; the partition then has no open transaction.
func TestAppendCommitMarker(t *testing.T) {
	pdir := filepath.Join(t.TempDir(), "t-0")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	b0 := realBatch(0, 0, 9, 0, false, false) // idempotent
	b1 := realBatch(1, attrTxn, 7, 4, false, false)
	torn := realBatch(2, attrTxn, 7, 4, false, false)[:20]
	e0 := encodeIndexEntry(0, 0, false)
	for name, b := range map[string][]byte{
		"0.dat":         slices.Concat(b0, b1, torn),
		"0.idx":         e0[:], // b1's entry was lost
		"snapshot.json": []byte("{}"),
	} {
		if err := os.WriteFile(filepath.Join(pdir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	off, err := appendCommitMarker(pdir, OpenTxn{Topic: "t", ProducerID: 7, Epoch: 4, FirstOffset: 1, LastOffset: 1})
	if err != nil || off != 2 {
		t.Fatalf("marker at %d, %v; want 2", off, err)
	}
	raw, _ := os.ReadFile(filepath.Join(pdir, "0.dat"))
	if !slices.Equal(raw[:len(b0)+len(b1)], slices.Concat(b0, b1)) {
		t.Fatal("batches before the marker changed")
	}
	m := raw[len(b0)+len(b1):]
	s, err := readSegment(pdir, 0)
	if err != nil || s.batches != 3 || s.valid != int64(len(raw)) || s.lastEnd != 3 {
		t.Fatalf("segment after: %+v %v", s, err)
	}
	if !isCommitMarker(m[batchHeaderLen:]) || int64(binary.BigEndian.Uint64(m[43:51])) != 7 || int16(binary.BigEndian.Uint16(m[51:53])) != 4 {
		t.Fatalf("marker % x", m)
	}
	idx, _ := os.ReadFile(filepath.Join(pdir, "0.idx"))
	if len(idx) != 3*indexEntrySize || idx[indexEntrySize+14] != 1 || idx[2*indexEntrySize+14] != 0 {
		t.Fatalf("index % x: want 3 entries, b1 inTx, the marker not", idx)
	}
	if _, err := os.Stat(filepath.Join(pdir, "snapshot.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("snapshot.json kept: %v", err)
	}
	ps, err := scanPartition(pdir)
	if err != nil || len(ps.open) != 0 {
		t.Fatalf("open after the marker: %+v %v", ps.open, err)
	}
	// Nothing of the transaction left: no marker.
	if off, err := appendCommitMarker(pdir, OpenTxn{ProducerID: 7, Epoch: 4, FirstOffset: 3}); err != nil || off != -1 {
		t.Fatalf("no data: marker at %d, %v", off, err)
	}
}

// FuzzIsCommitMarker: any bytes decode without a panic.
func FuzzIsCommitMarker(f *testing.F) {
	f.Add(realBatch(0, 0, 1, 0, true, true)[batchHeaderLen:])
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) { _ = isCommitMarker(b) })
}
