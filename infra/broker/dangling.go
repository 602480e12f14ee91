package broker

// Dangling transactions after a crash: the kfake defect and the repair.
//
// kfake persists every produced batch to its data directory as it is
// written (partitions/<topic>-<p>/<base>.dat), but the state of open
// transactions only on an orderly Close. After a crash (kill -9, power
// loss) it rebuilds a partition by replaying its batches
// (persist.go, loadPartitionFullReplay): a transactional producer whose
// last data batches are followed by no control batch had a transaction
// open at the crash. kfake then adds an entry to the partition's aborted
// transaction index and leaves the producer out of the open transactions,
// so the last stable offset moves to the high watermark, but it writes no
// abort marker. The log then holds a transaction that is neither committed
// nor aborted:
//
//   - A read_committed fetch returns its batches with the entry in
//     AbortedTransactions; the client drops them and, seeing no abort
//     marker, keeps dropping every later batch of the same producer id in
//     that response (franz-go's aborter, like Java's, pops a producer's
//     aborted range only at its abort marker). kfake derives a
//     transactional producer's id from its transactional id (FNV-64,
//     txns.go pids.create), so a restarted instance with a stable
//     transactional id writes its next, committed, transactions under the
//     same producer id: readers would drop them.
//   - On the next crash recovery the replay meets that producer's next
//     control batch, a commit, and counts the dangling batches into the
//     committed transaction: records that were never committed become
//     visible.
//   - A reader that waits to see a record at the last offset before the
//     end (the runtime's restore did) waits forever: the "dangling-tail
//     stall" (docs/reliability.md).
//
// The repair (Start, before any client is accepted): scanLog reads the
// batch headers of every partition on disk and finds each producer's
// transaction that no control batch closes. Those whose producer id and
// epoch have a COMMIT marker on another partition were being committed
// when the crash cut kfake's endTx short: commitmarker.go writes their
// COMMIT marker to disk before kfake loads. For each other one that the
// broker, once started, does not report as an open transaction on that
// partition (DescribeProducers: a transaction kept across an orderly Close
// is still open and the broker itself aborts it on timeout), repairDangling
// writes
// the abort marker kfake should have written (WriteTxnMarkers, abort, the
// producer id and epoch of the dangling batches). Clients are held back
// meanwhile (gate), so no new transaction of the same producer can start
// before its marker.

import (
	"context"
	"encoding/binary"
	"errors"
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
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// OpenTxn is a transaction of one producer on one partition whose data
// batches no control batch (commit or abort marker) follows in the log.
type OpenTxn struct {
	Topic       string
	Partition   int32
	ProducerID  int64
	Epoch       int16
	FirstOffset int64 // its first data batch
	LastOffset  int64 // the last offset of its last data batch
}

// Batch header of the v2 record batch format (the bytes kfake's .dat
// segment files hold, one batch after the other).
const (
	batchHeaderLen = 61
	attrTxn        = 0x10
	attrControl    = 0x20
)

// txnID names one transaction: kfake bumps a transactional producer's
// epoch at every EndTxn of a v5+ client (KIP-890, txns.go), and its
// markers carry the producer id and epoch of the data batches they close.
type txnID struct {
	pid   int64
	epoch int16
}

// logScan is what scanLog finds in kfake's data directory.
type logScan struct {
	// open: the transactions no control batch closes (OpenTxn).
	open []OpenTxn
	// committed: the transactions with a COMMIT marker that closes data
	// batches of the same producer id and epoch, with the partitions
	// holding such a marker.
	committed map[txnID][]string
	// reused: the (producer id, epoch) pairs seen closed more than once on
	// one partition, or open on a partition where the same pair was closed
	// before, or open with data batches of another epoch before them in
	// the same range: the epoch does not name one transaction there (a
	// client older than EndTxn v5 keeps its epoch across transactions; a
	// directory repaired by no one holds a crash-aborted range followed by
	// the next epoch's batches).
	reused map[txnID]bool
}

// scanOpenTxns returns the transactions left open in the logs of kfake's
// data directory dir, in topic, partition, first offset order. It reads
// only batch headers (and the key of control records). A batch cut short
// at the end of a segment (a torn write) ends the scan of that segment, as
// kfake truncates it on load.
func scanOpenTxns(dir string) ([]OpenTxn, error) {
	s, err := scanLog(dir)
	return s.open, err
}

// scanLog scans every partition of kfake's data directory dir.
func scanLog(dir string) (logScan, error) {
	s := logScan{committed: map[txnID][]string{}, reused: map[txnID]bool{}}
	root := filepath.Join(dir, "partitions")
	pdirs, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("scan open transactions: %w", err)
	}
	for _, d := range pdirs {
		if !d.IsDir() {
			continue
		}
		i := strings.LastIndexByte(d.Name(), '-')
		if i < 0 {
			continue
		}
		topic, err := url.PathUnescape(d.Name()[:i])
		p, perr := strconv.ParseInt(d.Name()[i+1:], 10, 32)
		if err != nil || perr != nil {
			continue
		}
		ps, err := scanPartition(filepath.Join(root, d.Name()))
		if err != nil {
			return s, fmt.Errorf("scan open transactions %s: %w", d.Name(), err)
		}
		for _, o := range ps.open {
			o.Topic, o.Partition = topic, int32(p)
			s.open = append(s.open, o)
			if ps.closed[txnID{o.ProducerID, o.Epoch}] > 0 || ps.mixed[o.ProducerID] {
				s.reused[txnID{o.ProducerID, o.Epoch}] = true
			}
		}
		for id, n := range ps.closed {
			if n > 1 {
				s.reused[id] = true
			}
		}
		for id := range ps.committed {
			s.committed[id] = append(s.committed[id], d.Name())
		}
	}
	slices.SortFunc(s.open, func(a, b OpenTxn) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.FirstOffset - b.FirstOffset)
	})
	return s, nil
}

// partScan is the scan of one partition.
type partScan struct {
	open      []OpenTxn
	mixed     map[int64]bool     // open ranges (by producer id) holding batches of several epochs
	closed    map[txnID]int      // control batches per producer id and epoch
	committed map[txnID]struct{} // COMMIT markers that close data of the same epoch
}

// segScan is the running state of a partition's scan across segments.
type segScan struct {
	open      map[int64]*OpenTxn
	mixed     map[int64]bool
	closed    map[txnID]int
	committed map[txnID]struct{}
}

// scanPartition scans the segments of one partition directory in offset
// order.
func scanPartition(pdir string) (partScan, error) {
	bases, err := segmentBases(pdir)
	if err != nil {
		return partScan{}, err
	}
	st := segScan{open: map[int64]*OpenTxn{}, mixed: map[int64]bool{}, closed: map[txnID]int{}, committed: map[txnID]struct{}{}}
	for _, base := range bases {
		if err := st.scanSegment(filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat")); err != nil {
			return partScan{}, err
		}
	}
	out := partScan{open: make([]OpenTxn, 0, len(st.open)), mixed: st.mixed, closed: st.closed, committed: st.committed}
	for _, o := range st.open {
		out.open = append(out.open, *o)
	}
	return out, nil
}

// segmentBases returns the base offsets of the segment files (<base>.dat)
// of a partition directory, in order.
func segmentBases(pdir string) ([]int64, error) {
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), ".dat"); ok {
			if b, err := strconv.ParseInt(base, 10, 64); err == nil {
				bases = append(bases, b)
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// scanSegment applies the batches of one segment file to open: a
// transactional data batch opens (or extends) its producer's transaction,
// a control batch of the producer closes it.
func scanSegment(path string, open map[int64]*OpenTxn) error {
	st := segScan{open: open, mixed: map[int64]bool{}, closed: map[txnID]int{}, committed: map[txnID]struct{}{}}
	return st.scanSegment(path)
}

func (st *segScan) scanSegment(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var h [batchHeaderLen + controlKeyPrefix]byte
	for pos := int64(0); pos+batchHeaderLen <= size; {
		if _, err := f.ReadAt(h[:batchHeaderLen], pos); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		length := int64(int32(binary.BigEndian.Uint32(h[8:12])))
		if length < batchHeaderLen-12 || pos+12+length > size || h[16] != 2 {
			return nil // torn or not a v2 batch: kfake stops here too
		}
		var (
			first = int64(binary.BigEndian.Uint64(h[0:8]))
			attrs = binary.BigEndian.Uint16(h[21:23])
			last  = first + int64(int32(binary.BigEndian.Uint32(h[23:27])))
			pid   = int64(binary.BigEndian.Uint64(h[43:51]))
			epoch = int16(binary.BigEndian.Uint16(h[51:53]))
		)
		switch {
		case attrs&attrControl != 0:
			id := txnID{pid, epoch}
			st.closed[id]++
			if o := st.open[pid]; o != nil && o.Epoch == epoch && !st.mixed[pid] {
				n := min(int64(len(h)), 12+length)
				if _, err := f.ReadAt(h[:n], pos); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if isCommitMarker(h[batchHeaderLen:n]) {
					st.committed[id] = struct{}{}
				}
			}
			delete(st.open, pid)
			delete(st.mixed, pid)
		case attrs&attrTxn != 0:
			if o := st.open[pid]; o != nil {
				if o.Epoch != epoch {
					st.mixed[pid] = true
				}
				o.LastOffset, o.Epoch = last, epoch
			} else {
				st.open[pid] = &OpenTxn{ProducerID: pid, Epoch: epoch, FirstOffset: first, LastOffset: last}
			}
		}
		pos += 12 + length
	}
	return nil
}

// controlKeyPrefix bounds the bytes of a control batch's first record that
// isCommitMarker reads: length, attributes, timestamp delta, offset delta
// and key length (varints of at most 5 or 10 bytes) and the 4-byte key.
const controlKeyPrefix = 40

// isCommitMarker reports whether rec, the start of the records of a
// control batch, is a COMMIT control record: its key is version (int16)
// then type (int16), 1 for COMMIT, 0 for ABORT. Anything unreadable is
// not a commit (kfake's replay treats it as an abort).
func isCommitMarker(rec []byte) bool {
	if _, n := binary.Varint(rec); n > 0 { // record length
		rec = rec[n:]
	} else {
		return false
	}
	if len(rec) < 1 {
		return false
	}
	rec = rec[1:] // attributes
	for range 2 { // timestamp delta, offset delta
		_, n := binary.Varint(rec)
		if n <= 0 {
			return false
		}
		rec = rec[n:]
	}
	klen, n := binary.Varint(rec)
	if n <= 0 || klen < 4 || len(rec[n:]) < 4 {
		return false
	}
	return binary.BigEndian.Uint16(rec[n+2:n+4]) == 1
}

// repairDangling writes an abort marker for every transaction of open
// that the broker does not report as open (DescribeProducers), through
// the client cl, and returns those it aborted.
func repairDangling(ctx context.Context, cl *kgo.Client, open []OpenTxn) ([]OpenTxn, error) {
	if len(open) == 0 {
		return nil, nil
	}
	type tp struct {
		t string
		p int32
	}
	dreq := kmsg.NewPtrDescribeProducersRequest()
	seen := map[tp]bool{}
	for _, o := range open {
		k := tp{o.Topic, o.Partition}
		if seen[k] {
			continue
		}
		seen[k] = true
		i := slices.IndexFunc(dreq.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return t.Topic == o.Topic })
		if i < 0 {
			t := kmsg.NewDescribeProducersRequestTopic()
			t.Topic = o.Topic
			dreq.Topics = append(dreq.Topics, t)
			i = len(dreq.Topics) - 1
		}
		dreq.Topics[i].Partitions = append(dreq.Topics[i].Partitions, o.Partition)
	}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	type live struct {
		tp
		pid   int64
		first int64
	}
	alive := map[live]bool{}
	for _, t := range dresp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("describe producers %s/%d: %w", t.Topic, p.Partition, err)
			}
			for _, ap := range p.ActiveProducers {
				alive[live{tp{t.Topic, p.Partition}, ap.ProducerID, ap.CurrentTxnStartOffset}] = true
			}
		}
	}
	var aborted []OpenTxn
	for _, o := range open {
		if alive[live{tp{o.Topic, o.Partition}, o.ProducerID, o.FirstOffset}] {
			continue // still open in the broker: it aborts it on timeout
		}
		if err := writeAbortMarker(ctx, cl, o); err != nil {
			return aborted, err
		}
		aborted = append(aborted, o)
	}
	return aborted, nil
}

// writeAbortMarker writes an abort control batch for o's producer on o's
// partition (WriteTxnMarkers, as a transaction coordinator does).
func writeAbortMarker(ctx context.Context, cl *kgo.Client, o OpenTxn) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = o.ProducerID, o.Epoch, false
	t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	t.Topic, t.Partitions = o.Topic, []int32{o.Partition}
	m.Topics = append(m.Topics, t)
	req.Markers = append(req.Markers, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("abort dangling transaction %s/%d producer %d: %w", o.Topic, o.Partition, o.ProducerID, err)
	}
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("abort dangling transaction %s/%d producer %d: %w", o.Topic, o.Partition, o.ProducerID, err)
				}
			}
		}
	}
	return nil
}

// gate is the broker's listener during Start: kfake accepts only the
// repair's in-process connections (dial) until open is called; clients
// that connect meanwhile wait in the TCP backlog and are accepted after.
type gate struct {
	net.Listener // the TCP listener: Addr, and Accept once open

	private  chan net.Conn
	opened   chan struct{}
	openOnce sync.Once
	closed   chan struct{}
	closeMu  sync.Once
}

func newGate(ln net.Listener) *gate {
	return &gate{Listener: ln, private: make(chan net.Conn), opened: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gate) Accept() (net.Conn, error) {
	select {
	case c := <-g.private:
		return c, nil
	case <-g.closed:
		return nil, net.ErrClosed
	case <-g.opened:
	}
	select {
	case c := <-g.private:
		return c, nil
	default:
	}
	return g.Listener.Accept()
}

func (g *gate) Close() error {
	g.closeMu.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// open lets TCP clients in.
func (g *gate) open() { g.openOnce.Do(func() { close(g.opened) }) }

// dial is a kgo.Dialer that connects to the broker in process, whatever
// the address.
func (g *gate) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c1, c2 := net.Pipe()
	select {
	case g.private <- c2:
		return c1, nil
	case <-g.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// repairClient is a client of the broker through g's in-process
// connections, as the first Super user when there are users.
func repairClient(g *gate, users []User) (*kgo.Client, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(g.Addr().String()), kgo.Dialer(g.dial)}
	for _, u := range users {
		if u.Super {
			opts = append(opts, kgo.SASL(scram.Auth{User: u.Name, Pass: u.Password}.AsSha512Mechanism()))
			break
		}
	}
	return kgo.NewClient(opts...)
}
