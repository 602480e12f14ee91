// Package proofs serves the ledger's signed tree head and RFC 6962 proofs.
// A Server follows the published book (the blocks topic), verifies every
// block against the ledger key and answers from its own copy of the tree:
// as Go calls (the owner API holds one in the same process) and over HTTP
// (Handler). A record of the blocks topic that does not extend the
// verified book (a duplicate, a forged or out-of-order block, garbage) is
// skipped and reported (metric, error log, Config.Alerts), and the Server
// goes on with the next. A Client asks a Server over HTTP with the same calls and
// verifies nothing: it returns what the URL answers, and whoever uses its
// proofs checks them against a checkpoint signed by the ledger key.
package proofs

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// Prover answers for the ledger's tree: a Server in process, a Client over
// HTTP. Errors wrap ledger.ErrNotFound (an entry or tree size the ledger
// does not hold yet) or ErrBadRequest (arguments that can never be
// answered).
type Prover interface {
	Head(ctx context.Context) (Head, error)
	// InclusionProof proves leaf index leaf in the tree of treeSize
	// entries (0: the head's, and then the proof carries the signed
	// checkpoint).
	InclusionProof(ctx context.Context, leaf, treeSize uint64) (Proof, error)
	// ConsistencyProof proves the tree of second entries extends the tree
	// of first entries.
	ConsistencyProof(ctx context.Context, first, second uint64) (Consistency, error)
}

// ErrBadRequest marks a request that can never be answered.
var ErrBadRequest = errors.New("ledger proofs: bad request")

// Head is the signed tree head (GET /v1/ledger/head).
type Head struct {
	TreeSize    uint64 `json:"tree_size"`
	Root        string `json:"root"`
	Height      uint64 `json:"height"` // height of the last block
	Blocks      uint64 `json:"blocks"`
	TimestampMs int64  `json:"timestamp_ms"`
	Clock       string `json:"clock"`
	BlockHash   string `json:"block_hash"`
	Checkpoint  string `json:"checkpoint"`
	CaughtUp    bool   `json:"caught_up"`
	// BadRecords is how many records of the blocks topic the Server
	// skipped because they do not extend the verified book.
	BadRecords uint64 `json:"bad_records,omitempty"`
}

// Proof is an inclusion proof (GET /v1/ledger/entries/{id}/proof and
// /v1/ledger/leaves/{index}/proof).
type Proof struct {
	ID         string   `json:"id"` // as asked: the entry id, or the leaf index in decimal
	LeafIndex  uint64   `json:"leaf_index"`
	LeafHash   string   `json:"leaf_hash"`
	TreeSize   uint64   `json:"tree_size"`
	Root       string   `json:"root"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint,omitempty"` // when tree_size is the head's
}

// Consistency is a consistency proof (GET /v1/ledger/consistency).
type Consistency struct {
	First  uint64   `json:"first"`
	Second uint64   `json:"second"`
	Root1  string   `json:"root1"`
	Root2  string   `json:"root2"`
	Proof  []string `json:"proof"`
}

// Follower reads the book's blocks from height 0 and keeps following them
// (blocks.Reader); caught is called once everything published when it
// started has been read.
type Follower interface {
	Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error
}

// RecordFollower is a Follower that also hands over where each record is
// and the records that do not decode (blocks.Reader): a Server following
// one reports bad records with their offsets.
type RecordFollower interface {
	FollowRecords(ctx context.Context, fn func(ledger.Record) error, caught func()) error
}

// Alerter reports a bad record of the blocks topic beyond the Server's
// log and metric (blocks.Alerts: a dead letter).
type Alerter interface {
	Alert(ctx context.Context, rec ledger.Record, bad *ledger.BadRecord) error
}

// Config configures a Server.
type Config struct {
	// Blocks is followed from height 0; if it is a RecordFollower, by
	// record.
	Blocks Follower
	// PublicKey is the ledger key every block must be signed with: the
	// Server verifies the book as it reads it and serves only blocks that
	// extend it.
	PublicKey ed25519.PublicKey
	// Alerts, if set, is told of every bad record (after the log and the
	// metric); its errors are logged.
	Alerts Alerter
	// Registerer receives the metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Blocks == nil {
		return errors.New("ledger proofs: no blocks follower")
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return errors.New("ledger proofs: no public key")
	}
	return nil
}

// Server follows the book, verifies every block and answers from its copy
// of the tree. It keeps the tree (about 34 bytes per entry), an id index
// (about 50 bytes per entry) and the entries' canonical bytes (their size
// plus 8 bytes each) for the entry bundles of the tiles (TileHandler).
type Server struct {
	cfg     Config
	mu      sync.RWMutex
	book    *ledger.Book
	ids     map[idKey]uint64 // entry id -> leaf index
	data    []byte           // every entry's canonical bytes, in leaf order (entry bundles)
	ends    []uint64         // ends[i]: end of leaf i's bytes in data
	headers []ledger.Header  // every block's header, by height (explorer.go)
	gzMu    sync.Mutex
	gz      map[uint64][]byte // gzip of full entry bundles, by index (tiles.go)
	caught  atomic.Bool
	bad     atomic.Uint64
	badM    *prometheus.CounterVec
}

// ReaderLabel is the "reader" label of the Server's series of
// minecart_ledger_bad_blocks_total.
const ReaderLabel = "proofs"

var _ Prover = (*Server)(nil)

// NewServer returns a Server; Run makes it follow the blocks.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := prom.NewMetrics(cfg.Registerer)
	badM := m.CounterVec(ledger.BadBlocksMetric, ledger.BadBlocksHelp, "reader", "reason")
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("ledger proofs: %w", err)
	}
	for _, r := range ledger.Reasons {
		badM.WithLabelValues(ReaderLabel, string(r)) // every reason shows, at 0
	}
	return &Server{cfg: cfg, book: ledger.NewBook(), ids: make(map[idKey]uint64), badM: badM}, nil
}

// Run follows the blocks until ctx is done; it returns an error only if
// the blocks topic cannot be read. A record that does not extend the
// verified book is skipped and reported, and Run goes on.
func (s *Server) Run(ctx context.Context) error {
	caught := func() { s.caught.Store(true) }
	var err error
	if rf, ok := s.cfg.Blocks.(RecordFollower); ok {
		err = rf.FollowRecords(ctx, func(rec ledger.Record) error { s.ApplyRecord(ctx, rec); return nil }, caught)
	} else {
		err = s.cfg.Blocks.Follow(ctx, func(blk *ledger.Block) error {
			s.ApplyRecord(ctx, ledger.Record{Offset: -1, Block: blk})
			return nil
		}, caught)
	}
	if err != nil {
		s.cfg.Logger.Error("ledger proofs stopped", "err", err)
	}
	return err
}

// ApplyRecord verifies and adds the block of one record of the blocks
// topic (Run calls it). A record that does not extend the verified book
// changes nothing: it is counted, logged at error level with its offset,
// height and reason, handed to Config.Alerts, and returned.
func (s *Server) ApplyRecord(ctx context.Context, rec ledger.Record) *ledger.BadRecord {
	s.mu.Lock()
	bad := s.book.ApplyRecord(rec, s.cfg.PublicKey)
	if bad == nil {
		s.index(rec.Block)
	}
	s.mu.Unlock()
	if bad == nil {
		return nil
	}
	s.bad.Add(1)
	s.badM.WithLabelValues(ReaderLabel, string(bad.Reason)).Inc()
	s.cfg.Logger.Error("ledger block skipped: the record does not extend the verified book",
		"offset", bad.Offset, "height", bad.Height, "reason", string(bad.Reason), "err", bad.Err)
	if s.cfg.Alerts != nil {
		if err := s.cfg.Alerts.Alert(ctx, rec, bad); err != nil {
			s.cfg.Logger.Error("ledger block skipped: alert not written", "offset", bad.Offset, "reason", string(bad.Reason), "err", err)
		}
	}
	return bad
}

// Apply verifies and adds one block (tests may call it). A block that does
// not extend the book changes nothing; the error is its
// *ledger.Inconsistency.
func (s *Server) Apply(blk *ledger.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.book.Apply(blk, s.cfg.PublicKey); err != nil {
		return err
	}
	s.index(blk)
	return nil
}

// index adds the ids of an applied block's entries. The caller holds s.mu.
func (s *Server) index(blk *ledger.Block) {
	s.headers = append(s.headers, blk.Header)
	for i, raw := range blk.Entries {
		e, _ := ledger.DecodeEntry(raw) // Apply decoded it already
		s.ids[keyOf(e.ID)] = blk.Header.FirstIndex + uint64(i)
		s.data = append(s.data, raw...)
		s.ends = append(s.ends, uint64(len(s.data)))
	}
}

// BadRecords is how many records the Server skipped.
func (s *Server) BadRecords() uint64 { return s.bad.Load() }

// BadBlocksCounter is the Server's minecart_ledger_bad_blocks_total (for
// tests; its series are labelled ReaderLabel).
func (s *Server) BadBlocksCounter() *prometheus.CounterVec { return s.badM }

// Head is the verified head: the last block's header and checkpoint.
func (s *Server) Head(context.Context) (Head, error) {
	s.mu.RLock()
	h, cp, blocks := s.book.Head(), s.book.Checkpoint(), s.book.Height()
	s.mu.RUnlock()
	if blocks == 0 {
		return Head{Root: merkle.EmptyRoot.String(), CaughtUp: s.caught.Load(), BadRecords: s.bad.Load()}, nil
	}
	clock := "event"
	if h.Clock == ledger.ClockWall {
		clock = "wall"
	}
	return Head{
		TreeSize: h.TreeSize, Root: h.Root.String(), Height: h.Height, Blocks: blocks, TimestampMs: h.TimestampMs,
		Clock: clock, BlockHash: h.Hash().String(), Checkpoint: cp, CaughtUp: s.caught.Load(), BadRecords: s.bad.Load(),
	}, nil
}

// InclusionProof proves leaf index leaf (Prover): the index itself, never
// an entry whose id happens to read as that number.
func (s *Server) InclusionProof(_ context.Context, leaf, treeSize uint64) (Proof, error) {
	return s.leafProof(leaf, treeSize, treeSize != 0)
}

// leafProof proves leaf index leaf in the tree of treeSize entries, or of
// the head's size if !sized (GET /v1/ledger/leaves/{index}/proof).
func (s *Server) leafProof(leaf, treeSize uint64, sized bool) (Proof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.prove(strconv.FormatUint(leaf, 10), leaf, treeSize, sized)
}

// entryProof proves the entry named id (GET /v1/ledger/entries/{id}/proof):
// the entry with that id or, if there is none, the leaf index id in
// decimal; in the tree of treeSize entries, or of the head's size if
// !sized.
func (s *Server) entryProof(id string, treeSize uint64, sized bool) (Proof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	index, found := s.ids[keyOf(id)]
	if !found {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			n = math.MaxUint64 // no such leaf
		}
		index = n
	}
	return s.prove(id, index, treeSize, sized)
}

// prove proves leaf index in the tree of treeSize entries, or of the
// head's size if !sized; id is what the caller asked for (an entry id or
// the index in decimal). The caller holds s.mu.
func (s *Server) prove(id string, index, treeSize uint64, sized bool) (Proof, error) {
	head := s.book.Size()
	size := head
	if sized {
		if treeSize > head {
			return Proof{}, notFound("tree_size %d: the ledger has %d entries", treeSize, head)
		}
		size = treeSize
	}
	if index >= head {
		return Proof{}, notFound("entry %q: not in the ledger", id)
	}
	if index >= size {
		return Proof{}, badRequest("entry %q (leaf %d) is not in a tree of size %d", id, index, size)
	}
	tree := s.book.Tree()
	proof, err := tree.InclusionProof(index, size)
	if err != nil {
		return Proof{}, badRequest("%v", err)
	}
	root, _ := tree.RootAt(size)
	leaf, _ := tree.LeafHash(index)
	out := Proof{ID: id, LeafIndex: index, LeafHash: leaf.String(), TreeSize: size, Root: root.String(), Proof: hexHashes(proof)}
	if size == head {
		out.Checkpoint = s.book.Checkpoint()
	}
	return out, nil
}

// ConsistencyProof proves the tree of second entries extends the tree of
// first entries (Prover).
func (s *Server) ConsistencyProof(_ context.Context, first, second uint64) (Consistency, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if first > second {
		return Consistency{}, badRequest("first %d > second %d", first, second)
	}
	if head := s.book.Size(); second > head {
		return Consistency{}, notFound("second %d: the ledger has %d entries", second, head)
	}
	tree := s.book.Tree()
	proof, err := tree.ConsistencyProof(first, second)
	if err != nil {
		return Consistency{}, badRequest("%v", err)
	}
	r1, _ := tree.RootAt(first)
	r2, _ := tree.RootAt(second)
	return Consistency{First: first, Second: second, Root1: r1.String(), Root2: r2.String(), Proof: hexHashes(proof)}, nil
}

// size is the tree size of the head.
func (s *Server) size() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.book.Size()
}

// idKey is the compact key of an entry id in the index: the first 16
// bytes of its SHA-256 (at 10^7 ids the chance of any collision is below
// 10^-24).
type idKey [16]byte

func keyOf(id string) (k idKey) {
	sum := sha256.Sum256([]byte(id))
	copy(k[:], sum[:])
	return k
}

func hexHashes(hs []merkle.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// requestError is an answer that is not a proof: its message, and which of
// ledger.ErrNotFound and ErrBadRequest it is.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

func notFound(format string, a ...any) error {
	return &requestError{ledger.ErrNotFound, fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) error {
	return &requestError{ErrBadRequest, fmt.Sprintf(format, a...)}
}

// Campaigns lists the campaigns of the verified book (docs/campaigns.md).
func (s *Server) Campaigns() []ledger.CampaignInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.book.Campaigns()
}

// Campaign is one campaign of the verified book.
func (s *Server) Campaign(id string) (ledger.CampaignInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.book.Campaign(id)
}

// PartnerKey is the partner's registered campaign key in the verified
// book (nil if none).
func (s *Server) PartnerKey(partner string) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.book.PartnerKey(partner)
}
