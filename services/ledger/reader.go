package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// BlockFollower reads the blocks topic from offset 0 and keeps following
// it (KafkaBlocks). caught is called whenever everything committed so far
// has been read.
type BlockFollower interface {
	Follow(ctx context.Context, fn func(*Block) error, caught func()) error
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// Blocks is followed from offset 0.
	Blocks BlockFollower
	// PublicKey is the ledger key every block must be signed with: the
	// Reader verifies the book as it reads it and serves nothing past the
	// first inconsistency.
	PublicKey ed25519.PublicKey
	Logger    *slog.Logger
}

// Validate reports whether the configuration is usable.
func (c ReaderConfig) Validate() error {
	if c.Blocks == nil {
		return errors.New("ledger reader: no blocks follower")
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return errors.New("ledger reader: no public key")
	}
	return nil
}

// Reader follows the blocks topic, verifies every block and serves heads,
// inclusion proofs and consistency proofs over HTTP (Handler). It keeps
// the tree (about 34 bytes per entry) and an id index (about 50 bytes per
// entry), not the entries themselves.
type Reader struct {
	cfg    ReaderConfig
	mu     sync.RWMutex
	book   *Book
	ids    map[idKey]uint64 // entry id -> leaf index
	caught atomic.Bool
}

// NewReader returns a Reader; Run makes it follow the blocks.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Reader{cfg: cfg, book: NewBook(), ids: make(map[idKey]uint64)}, nil
}

// Run follows the blocks until ctx is done. It returns an *Inconsistency if
// the book does not verify (the Reader keeps serving the verified prefix).
func (r *Reader) Run(ctx context.Context) error {
	err := r.cfg.Blocks.Follow(ctx, r.Apply, func() { r.caught.Store(true) })
	if err != nil {
		r.cfg.Logger.Error("ledger reader stopped", "err", err)
	}
	return err
}

// Apply verifies and adds one block (Run calls it; tests may too).
func (r *Reader) Apply(blk *Block) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.book.Apply(blk, r.cfg.PublicKey); err != nil {
		return err
	}
	for i, raw := range blk.Entries {
		e, _ := DecodeEntry(raw) // Apply decoded it already
		r.ids[keyOf(false, e.ID)] = blk.Header.FirstIndex + uint64(i)
	}
	return nil
}

// Head is the verified head: the last block's header and checkpoint.
func (r *Reader) Head() (Header, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.book.Head(), r.book.Checkpoint()
}

// HeadJSON is the body of GET /v1/ledger/head.
type HeadJSON struct {
	TreeSize    uint64 `json:"tree_size"`
	Root        string `json:"root"`
	Height      uint64 `json:"height"` // height of the last block
	Blocks      uint64 `json:"blocks"`
	TimestampMs int64  `json:"timestamp_ms"`
	Clock       string `json:"clock"`
	BlockHash   string `json:"block_hash"`
	Checkpoint  string `json:"checkpoint"`
	CaughtUp    bool   `json:"caught_up"`
}

// ProofJSON is the body of GET /v1/ledger/entries/{id}/proof.
type ProofJSON struct {
	ID         string   `json:"id"`
	LeafIndex  uint64   `json:"leaf_index"`
	LeafHash   string   `json:"leaf_hash"`
	TreeSize   uint64   `json:"tree_size"`
	Root       string   `json:"root"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint,omitempty"` // when tree_size is the head's
}

// ConsistencyJSON is the body of GET /v1/ledger/consistency.
type ConsistencyJSON struct {
	First  uint64   `json:"first"`
	Second uint64   `json:"second"`
	Root1  string   `json:"root1"`
	Root2  string   `json:"root2"`
	Proof  []string `json:"proof"`
}

// Handler serves:
//
//	GET /v1/ledger/head
//	GET /v1/ledger/entries/{id}/proof?tree_size=N   (id: entry id, URL-escaped, or leaf index)
//	GET /v1/ledger/consistency?first=M&second=N
//
// as JSON; bad parameters get 400, unknown entries and sizes beyond the
// head 404, with {"error": "..."}.
func (r *Reader) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ledger/head", r.serveHead)
	mux.HandleFunc("GET /v1/ledger/entries/{rest...}", r.serveProof)
	mux.HandleFunc("GET /v1/ledger/consistency", r.serveConsistency)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, a...)})
}

func (r *Reader) serveHead(w http.ResponseWriter, _ *http.Request) {
	r.mu.RLock()
	h, cp, blocks := r.book.Head(), r.book.Checkpoint(), r.book.Height()
	r.mu.RUnlock()
	if blocks == 0 {
		writeJSON(w, http.StatusOK, HeadJSON{Root: merkle.EmptyRoot.String(), CaughtUp: r.caught.Load()})
		return
	}
	clock := "event"
	if h.Clock == ClockWall {
		clock = "wall"
	}
	writeJSON(w, http.StatusOK, HeadJSON{
		TreeSize: h.TreeSize, Root: h.Root.String(), Height: h.Height, Blocks: blocks, TimestampMs: h.TimestampMs,
		Clock: clock, BlockHash: h.Hash().String(), Checkpoint: cp, CaughtUp: r.caught.Load(),
	})
}

func (r *Reader) serveProof(w http.ResponseWriter, req *http.Request) {
	id, ok := strings.CutSuffix(req.PathValue("rest"), "/proof")
	if !ok || id == "" {
		httpError(w, http.StatusNotFound, "want /v1/ledger/entries/{id}/proof")
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	head := r.book.Size()
	size := head
	if s := req.URL.Query().Get("tree_size"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "tree_size %q: not a number", s)
			return
		}
		if n > head {
			httpError(w, http.StatusNotFound, "tree_size %d: the ledger has %d entries", n, head)
			return
		}
		size = n
	}
	index, found := r.ids[keyOf(false, id)]
	if !found {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n >= head {
			httpError(w, http.StatusNotFound, "entry %q: not in the ledger", id)
			return
		}
		index = n
	}
	if index >= size {
		httpError(w, http.StatusBadRequest, "entry %q (leaf %d) is not in a tree of size %d", id, index, size)
		return
	}
	tree := r.book.Tree()
	proof, err := tree.InclusionProof(index, size)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	root, _ := tree.RootAt(size)
	leaf, _ := tree.LeafHash(index)
	out := ProofJSON{ID: id, LeafIndex: index, LeafHash: leaf.String(), TreeSize: size, Root: root.String(), Proof: hexHashes(proof)}
	if size == head {
		out.Checkpoint = r.book.Checkpoint()
	}
	writeJSON(w, http.StatusOK, out)
}

func (r *Reader) serveConsistency(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	r.mu.RLock()
	defer r.mu.RUnlock()
	head := r.book.Size()
	parse := func(name string, def uint64, required bool) (uint64, bool) {
		s := q.Get(name)
		if s == "" {
			if required {
				httpError(w, http.StatusBadRequest, "%s: required", name)
				return 0, false
			}
			return def, true
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "%s %q: not a number", name, s)
			return 0, false
		}
		return n, true
	}
	first, ok := parse("first", 0, true)
	if !ok {
		return
	}
	second, ok := parse("second", head, false)
	if !ok {
		return
	}
	if first > second {
		httpError(w, http.StatusBadRequest, "first %d > second %d", first, second)
		return
	}
	if second > head {
		httpError(w, http.StatusNotFound, "second %d: the ledger has %d entries", second, head)
		return
	}
	tree := r.book.Tree()
	proof, err := tree.ConsistencyProof(first, second)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	r1, _ := tree.RootAt(first)
	r2, _ := tree.RootAt(second)
	writeJSON(w, http.StatusOK, ConsistencyJSON{First: first, Second: second, Root1: r1.String(), Root2: r2.String(), Proof: hexHashes(proof)})
}
