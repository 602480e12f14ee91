package proofs

import (
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// The explorer's reads of the verified book (the block explorer, services/web):
//
//	GET /v1/ledger/blocks?before=H&limit=N   block headers, newest first (before: default past the head; limit 1..100, default 20)
//	GET /v1/ledger/blocks/{height}           one block: its header and entries
//	GET /v1/ledger/leaves/{index}            one entry: decoded, its canonical bytes and leaf hash, its block
//	GET /v1/ledger/campaigns                 the book's campaigns, their definitions decoded
//
// Everything comes from the Server's verified copy of the book, so it shows
// exactly what the blocks topic holds (identities as the ledger wrote them).

// Limits of /v1/ledger/blocks.
const (
	DefaultBlocks = 20
	MaxBlocks     = 100
)

// BlockHeader is a block header in explorer answers (hashes in hex).
type BlockHeader struct {
	Height      uint64 `json:"height"`
	PrevHash    string `json:"prev_hash"`
	TreeSize    uint64 `json:"tree_size"`
	Root        string `json:"root"`
	FirstIndex  uint64 `json:"first_index"`
	LastIndex   uint64 `json:"last_index"`
	Entries     uint64 `json:"entries"`
	TimestampMs int64  `json:"timestamp_ms"`
	Time        string `json:"time"`
	Clock       string `json:"clock"`
	Hash        string `json:"hash"`
}

// Blocks is the answer of GET /v1/ledger/blocks.
type Blocks struct {
	Height uint64        `json:"height"` // blocks in the book
	Blocks []BlockHeader `json:"blocks"`
	// Before is the before= of the next page (absent on the last).
	Before *uint64 `json:"before,omitempty"`
}

// EntryView is a decoded entry in explorer answers.
type EntryView struct {
	LeafIndex     uint64   `json:"leaf_index"`
	BlockHeight   uint64   `json:"block_height"`
	LeafHash      string   `json:"leaf_hash"`
	Entry         []byte   `json:"entry"` // canonical bytes (base64 in JSON)
	Kind          string   `json:"kind"`
	ID            string   `json:"id"`
	VehicleID     string   `json:"vehicle_id,omitempty"`
	Account       string   `json:"account,omitempty"`
	Delta         int64    `json:"delta"`
	Date          string   `json:"date,omitempty"`
	ConfigVersion string   `json:"config_version,omitempty"`
	Score         float64  `json:"score,omitempty"`
	Flags         []string `json:"flags,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	Partner       string   `json:"partner,omitempty"`
	Item          string   `json:"item,omitempty"`
	Ref           string   `json:"ref,omitempty"`
	// Campaign (kind 6) and bonus (kind 7) entries (docs/campaigns.md).
	Campaign   string          `json:"campaign,omitempty"`
	Action     string          `json:"action,omitempty"`
	RuleHash   string          `json:"rule_hash,omitempty"`   // hex
	PublicKey  string          `json:"public_key,omitempty"`  // key action: hex
	Definition *DefinitionView `json:"definition,omitempty"`  // submit: the canonical definition decoded
	CreditLeaf *int64          `json:"credit_leaf,omitempty"` // bonus: the credit it rests on
	CreditHash string          `json:"credit_hash,omitempty"` // bonus: that credit's leaf hash, hex
	Amount     int64           `json:"amount,omitempty"`      // bonus: points paid
	Requested  int64           `json:"requested,omitempty"`   // bonus: the rule's clamped result
}

// DefinitionView is a campaign's canonical definition decoded
// (campaign.ParseDefinition); Error says why bytes did not decode.
type DefinitionView struct {
	Title  string `json:"title"`
	Rule   string `json:"rule"`
	Start  string `json:"start"`
	End    string `json:"end"`
	Budget int64  `json:"budget"`
	Cap    int64  `json:"cap"`
	Error  string `json:"error,omitempty"`
}

func definitionView(b []byte) *DefinitionView {
	d, err := campaign.ParseDefinition(b)
	if err != nil {
		return &DefinitionView{Error: err.Error()}
	}
	return &DefinitionView{Title: d.Title, Rule: d.Rule, Start: d.Start, End: d.End, Budget: d.Budget, Cap: d.Cap}
}

// CampaignView is one campaign of GET /v1/ledger/campaigns.
type CampaignView struct {
	ID         string          `json:"id"`
	Partner    string          `json:"partner"`
	Status     string          `json:"status"`
	RuleHash   string          `json:"rule_hash"`
	SubmitLeaf uint64          `json:"submit_leaf"`
	Spent      int64           `json:"spent"`
	Bonuses    int64           `json:"bonuses"`
	Definition *DefinitionView `json:"definition"`
}

// CampaignViews lists the book's campaigns in submit order.
func (s *Server) CampaignViews() []CampaignView {
	cs := s.Campaigns()
	out := make([]CampaignView, 0, len(cs))
	for _, c := range cs {
		out = append(out, CampaignView{ID: c.ID, Partner: c.Partner, Status: c.Status, RuleHash: hex.EncodeToString(c.RuleHash),
			SubmitLeaf: c.SubmitLeaf, Spent: c.Spent, Bonuses: c.Bonuses, Definition: definitionView(c.Definition)})
	}
	return out
}

func (s *Server) serveCampaigns(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": s.CampaignViews()})
}

// BlockView is the answer of GET /v1/ledger/blocks/{height}.
type BlockView struct {
	Header  BlockHeader `json:"header"`
	Entries []EntryView `json:"entries"`
}

func headerView(h ledger.Header) BlockHeader {
	clock := "event"
	if h.Clock == ledger.ClockWall {
		clock = "wall"
	}
	return BlockHeader{Height: h.Height, PrevHash: h.PrevHash.String(), TreeSize: h.TreeSize, Root: h.Root.String(),
		FirstIndex: h.FirstIndex, LastIndex: h.LastIndex, Entries: h.LastIndex - h.FirstIndex + 1, TimestampMs: h.TimestampMs,
		Time: time.UnixMilli(h.TimestampMs).UTC().Format(time.RFC3339), Clock: clock, Hash: h.Hash().String()}
}

// BlockHeaders lists up to limit headers below height before, newest first.
func (s *Server) BlockHeaders(before uint64, limit int) Blocks {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := uint64(len(s.headers))
	out := Blocks{Height: n, Blocks: []BlockHeader{}}
	if before > n {
		before = n
	}
	for h := before; h > 0 && len(out.Blocks) < limit; h-- {
		out.Blocks = append(out.Blocks, headerView(s.headers[h-1]))
	}
	if last := len(out.Blocks); last > 0 && out.Blocks[last-1].Height > 0 {
		next := out.Blocks[last-1].Height
		out.Before = &next
	}
	return out
}

// Block returns the block at height with its entries.
func (s *Server) Block(height uint64) (BlockView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if height >= uint64(len(s.headers)) {
		return BlockView{}, notFound("block %d: the book has %d blocks", height, len(s.headers))
	}
	h := s.headers[height]
	out := BlockView{Header: headerView(h), Entries: make([]EntryView, 0, h.LastIndex-h.FirstIndex+1)}
	for i := h.FirstIndex; i <= h.LastIndex; i++ {
		out.Entries = append(out.Entries, s.entryView(i, height))
	}
	return out, nil
}

// Leaf returns the entry at leaf index.
func (s *Server) Leaf(index uint64) (EntryView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if index >= uint64(len(s.ends)) {
		return EntryView{}, notFound("leaf %d: the book has %d entries", index, len(s.ends))
	}
	height := sort.Search(len(s.headers), func(i int) bool { return s.headers[i].LastIndex >= index })
	return s.entryView(index, uint64(height)), nil
}

// entryView decodes leaf i of the block at height. The caller holds s.mu.
func (s *Server) entryView(i, height uint64) EntryView {
	var start uint64
	if i > 0 {
		start = s.ends[i-1]
	}
	raw := append([]byte(nil), s.data[start:s.ends[i]]...)
	e, _ := ledger.DecodeEntry(raw) // the book verified it
	v := EntryView{LeafIndex: i, BlockHeight: height, LeafHash: merkle.HashLeaf(raw).String(), Entry: raw,
		Kind: e.Kind.String(), ID: e.ID, VehicleID: e.VehicleID, Account: e.Account, Delta: e.Delta(), Date: e.Date,
		ConfigVersion: e.ConfigVersion, Flags: e.Flags, Reason: e.Reason, Partner: e.Partner, Item: e.Item, Ref: e.Ref}
	switch e.Kind {
	case ledger.KindCredit:
		v.Score = e.Score
	case ledger.KindCampaign:
		v.Campaign, v.Action, v.RuleHash = e.Campaign, e.Action, hex.EncodeToString(e.RuleHash)
		if e.Action == ledger.ActionKey {
			v.PublicKey = hex.EncodeToString(e.PublicKey)
		}
		if e.Action == ledger.ActionSubmit {
			v.Definition = definitionView(e.Definition)
		}
	case ledger.KindBonus:
		cl := e.CreditLeaf
		v.Campaign, v.RuleHash, v.CreditLeaf, v.CreditHash = e.Campaign, hex.EncodeToString(e.RuleHash), &cl, hex.EncodeToString(e.CreditHash)
		v.Amount, v.Requested = e.Amount, e.Requested
	}
	return v
}

func (s *Server) serveBlocks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	before := uint64(1<<63 - 1)
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "before %q: not a number", v)
			return
		}
		before = n
	}
	limit := DefaultBlocks
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxBlocks {
			httpError(w, http.StatusBadRequest, "limit %q: want 1 to %d", v, MaxBlocks)
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, s.BlockHeaders(before, limit))
}

func (s *Server) serveBlock(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("height")
	h, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "block height %q: not a number", v)
		return
	}
	reply(w)(s.Block(h))
}

func (s *Server) serveLeaf(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("index")
	i, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "leaf index %q: not a number", v)
		return
	}
	reply(w)(s.Leaf(i))
}
