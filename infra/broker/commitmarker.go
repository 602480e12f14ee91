package broker

// Completing a commit that a crash interrupted, on disk, before kfake
// loads the directory.
//
// kfake's EndTxn (txns.go endTx) appends the COMMIT marker to each
// partition of the transaction in turn and keeps no transaction log, so a
// kill -9 in the middle leaves the transaction committed on some
// partitions and dangling on the others. The decision to commit was made:
// commitDecided finds those dangling tails, and appendCommitMarker writes
// the marker kfake would have written, in kfake's own segment format, so
// that kfake's replay (persist.go loadPartitionFullReplay) sees a
// committed transaction. A marker written through the running kfake
// (WriteTxnMarkers) would not do: on load kfake has already put the range
// in the partition's in-memory aborted transactions, and its marker path
// removes no entry from them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake's per-batch index entry (persist.go encodeIndexEntry): version
// byte (1), 1 byte of CRC-32C (its low byte) over bytes 2..14, partition
// leader epoch (int32 LE), max earlier timestamp (int64 LE), flags (bit 0:
// the batch was written inside a transaction).
const (
	indexEntrySize = 15
	indexVersion   = 1
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func encodeIndexEntry(epoch int32, maxEarlierTS int64, inTx bool) [indexEntrySize]byte {
	var buf [indexEntrySize]byte
	buf[0] = indexVersion
	binary.LittleEndian.PutUint32(buf[2:6], uint32(epoch))
	binary.LittleEndian.PutUint64(buf[6:14], uint64(maxEarlierTS))
	if inTx {
		buf[14] = 1
	}
	buf[1] = byte(crc32.Checksum(buf[2:], crc32c))
	return buf
}

// decodeIndexEpoch returns the partition leader epoch of an index entry,
// false when the entry's CRC does not match (kfake then reads epoch 0).
func decodeIndexEpoch(buf []byte) (int32, bool) {
	if len(buf) < indexEntrySize || byte(crc32.Checksum(buf[2:indexEntrySize], crc32c)) != buf[1] {
		return 0, false
	}
	return int32(binary.LittleEndian.Uint32(buf[2:6])), true
}

// commitDecided splits open into the transactions to commit and the rest:
// a dangling transaction is committed when another partition holds a
// COMMIT marker of the same producer id and epoch that closes data
// batches of that epoch there, unless that (producer id, epoch) does not
// name one transaction (logScan.reused).
func commitDecided(s logScan) (commit, rest []OpenTxn) {
	for _, o := range s.open {
		id := txnID{o.ProducerID, o.Epoch}
		if len(s.committed[id]) > 0 && !s.reused[id] {
			commit = append(commit, o)
		} else {
			rest = append(rest, o)
		}
	}
	return commit, rest
}

// segState is a segment file as kfake's load reads it (persist.go
// loadSegmentBatches): the batches up to the first torn or corrupt one.
type segState struct {
	base     int64
	valid    int64 // bytes of whole, CRC-valid batches
	size     int64 // bytes in the file
	batches  int
	idx      []byte
	lastEnd  int64 // the offset after the last batch, -1 with no batch
	lastPLE  int32 // the last batch's partition leader epoch (header)
	lastIdxE int32 // the last batch's epoch in the index, or lastPLE
	// want: the entry kfake writes with each batch (persist.go
	// persistBatchToSegment): the partition leader epoch of the header,
	// inTx for a transactional data batch, the batch's max timestamp for
	// the max earlier timestamp (kfake's load recomputes that field).
	want []byte
}

// healedIndex returns the index that matches the segment's batches: the
// entries on disk up to the first one that does not agree with its batch
// (torn, CRC, epoch or inTx), then want's. A kill between kfake's .dat
// and .idx writes leaves the index one entry short, and every later entry
// then describes the batch after its own (index.go).
func (s segState) healedIndex() []byte {
	n := min(len(s.idx), len(s.want))
	i := 0
	for ; i+indexEntrySize <= n; i += indexEntrySize {
		if !sameIndexEntry(s.idx[i:i+indexEntrySize], s.want[i:i+indexEntrySize]) {
			break
		}
	}
	return append(slices.Clip(s.idx[:i]), s.want[i:]...)
}

// sameIndexEntry reports whether the index entry got (CRC-valid) has the
// epoch and inTx flag of want; the max earlier timestamp is not compared.
func sameIndexEntry(got, want []byte) bool {
	e, ok := decodeIndexEpoch(got)
	w, _ := decodeIndexEpoch(want)
	return ok && e == w && got[14]&1 == want[14]&1
}

// readSegment reads segment base of pdir the way kfake's load does: a
// batch is kept while its length is sane, it fits in the file, its CRC-32C
// (over the bytes from the attributes on) matches and kmsg decodes it.
func readSegment(pdir string, base int64) (segState, error) {
	s := segState{base: base, lastEnd: -1}
	raw, err := os.ReadFile(filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat"))
	if err != nil {
		return s, err
	}
	s.idx, err = os.ReadFile(filepath.Join(pdir, strconv.FormatInt(base, 10)+".idx"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	s.size = int64(len(raw))
	pos := 0
	for pos+12 <= len(raw) {
		n := int(binary.BigEndian.Uint32(raw[pos+8 : pos+12]))
		if n < 0 || n > 1<<30 || pos+12+n > len(raw) || 12+n < 21 {
			break
		}
		b := raw[pos : pos+12+n]
		if binary.BigEndian.Uint32(b[17:21]) != crc32.Checksum(b[21:], crc32c) {
			break
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			break
		}
		s.lastEnd = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
		s.lastPLE, s.lastIdxE = rb.PartitionLeaderEpoch, rb.PartitionLeaderEpoch
		off := s.batches * indexEntrySize
		if off+indexEntrySize <= len(s.idx) {
			if e, ok := decodeIndexEpoch(s.idx[off:]); ok {
				s.lastIdxE = e
			}
		}
		inTx := rb.Attributes&attrTxn != 0 && rb.Attributes&attrControl == 0
		e := encodeIndexEntry(rb.PartitionLeaderEpoch, rb.MaxTimestamp, inTx)
		s.want = append(s.want, e[:]...)
		s.batches++
		pos += 12 + n
	}
	s.valid = int64(pos)
	return s, nil
}

// appendCommitMarker writes a COMMIT control batch for o's producer id and
// epoch at the end of partition directory pdir, as kfake's endTx would
// have: the bytes of txns.go txnMarkerBatch (one control record, key
// version 0 type 1, value an EndTxnMarker of coordinator epoch 0;
// attributes 0x30, last offset delta 0, first sequence -1, first and max
// timestamp now), at the partition's high watermark with the partition
// leader epoch of its last batch, then its index entry (not inTx). Before
// that it does what kfake's load would do to the last segment: it cuts a
// torn or corrupt tail of the .dat, drops index entries past the last
// batch and heals the index (segState.healedIndex).
// It removes the partition's snapshot.json, so kfake replays the
// partition instead of loading a snapshot that no longer describes it.
// It returns the marker's offset, or -1 when the partition holds no batch
// of o (nothing to commit).
func appendCommitMarker(pdir string, o OpenTxn) (int64, error) {
	bases, err := segmentBases(pdir)
	if err != nil {
		return -1, err
	}
	var last segState
	hwm := int64(-1)
	lastEpoch := int32(0)
	for _, base := range bases {
		s, err := readSegment(pdir, base)
		if err != nil {
			return -1, err
		}
		if s.lastEnd >= 0 {
			hwm, lastEpoch = s.lastEnd, s.lastIdxE
		}
		last = s
	}
	if hwm <= o.FirstOffset {
		return -1, nil // kfake's load keeps none of the dangling batches
	}
	datPath := filepath.Join(pdir, strconv.FormatInt(last.base, 10)+".dat")
	idxPath := filepath.Join(pdir, strconv.FormatInt(last.base, 10)+".idx")

	key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeCommit}
	marker := kmsg.EndTxnMarker{CoordinatorEpoch: 0}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: marker.AppendTo(nil)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // as txnMarkerBatch: a 1-byte length varint
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		FirstOffset:          hwm,
		PartitionLeaderEpoch: lastEpoch,
		Magic:                2,
		Attributes:           attrTxn | attrControl,
		LastOffsetDelta:      0,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           o.ProducerID,
		ProducerEpoch:        o.Epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              rec.AppendTo(nil),
	}
	enc := b.AppendTo(nil)
	binary.BigEndian.PutUint32(enc[8:12], uint32(len(enc)-12))
	binary.BigEndian.PutUint32(enc[17:21], crc32.Checksum(enc[21:], crc32c))
	idx := encodeIndexEntry(lastEpoch, now, false)

	if last.valid < last.size {
		if err := os.Truncate(datPath, last.valid); err != nil {
			return -1, err
		}
	}
	entries := append(last.healedIndex(), idx[:]...)
	if err := appendSync(datPath, enc); err != nil {
		return -1, err
	}
	if err := writeSync(idxPath, entries); err != nil {
		return -1, err
	}
	if err := os.Remove(filepath.Join(pdir, "snapshot.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return -1, err
	}
	return hwm, nil
}

func appendSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// writeSync replaces the contents of path with b (the index is small:
// 15 bytes a batch).
func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// commitOnDisk writes a COMMIT marker for each transaction of commit in
// kfake's data directory dir and returns those it committed.
func commitOnDisk(dir string, commit []OpenTxn) ([]OpenTxn, error) {
	var done []OpenTxn
	for _, o := range commit {
		pdir := filepath.Join(dir, "partitions", partDirName(o.Topic, o.Partition))
		off, err := appendCommitMarker(pdir, o)
		if err != nil {
			return done, fmt.Errorf("commit dangling transaction %s/%d producer %d: %w", o.Topic, o.Partition, o.ProducerID, err)
		}
		if off >= 0 {
			done = append(done, o)
		}
	}
	return done, nil
}

// partDirName is kfake's directory name of a partition (persist.go
// partDir): the topic URL-path-escaped, a dash, the partition.
func partDirName(topic string, p int32) string {
	return url.PathEscape(topic) + "-" + strconv.FormatInt(int64(p), 10)
}
