package owner

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ids"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/pseudonym"
)

// Proofs serves inclusion proofs of ledger entries: a proofs.Server in the
// same process or a proofs.Client of a remote one.
type Proofs interface {
	// InclusionProof proves leaf index leaf in the tree of treeSize
	// entries (0: the head's, and then the answer carries the signed
	// checkpoint). An entry the ledger does not hold yet is an error
	// matching ledger.ErrNotFound, arguments that can never be answered
	// one matching proofs.ErrBadRequest; any other error means the proofs
	// are out of reach for now (a remote ledger restarting).
	InclusionProof(ctx context.Context, leaf, treeSize uint64) (proofs.Proof, error)
}

// Balance is the balance of the account a vehicle's points are credited to.
type Balance struct {
	// Owner is the account the vehicle is bound to; "" when it is not
	// bound and its credits are held in Account ("vehicle:<id>").
	Owner     string `json:"owner,omitempty"`
	Account   string `json:"account"`
	Balance   int64  `json:"balance"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
}

// Balances looks up the balance behind a vehicle.
type Balances interface {
	VehicleBalance(ctx context.Context, vehicleID string) (Balance, error)
}

// InclusionProof proves an entry against the tree of TreeSize entries.
type InclusionProof struct {
	TreeSize uint64   `json:"tree_size"`
	Root     string   `json:"root"`
	Hashes   []string `json:"hashes"`
}

// LedgerEntry is one of the vehicle's ledger entries with what a client
// needs to check it: the canonical entry bytes (base64), their leaf hash
// (SHA-256(0x00 || entry)) and an inclusion proof.
type LedgerEntry struct {
	LeafIndex   uint64    `json:"leaf_index"`
	BlockHeight uint64    `json:"block_height"`
	BlockTime   time.Time `json:"block_time"`
	Kind        string    `json:"kind"`
	ID          string    `json:"id"`
	Account     string    `json:"account,omitempty"`
	// CounterAccount is a transfer's credit side (Account pays it);
	// Delta is the effect on Account.
	CounterAccount string `json:"counter_account,omitempty"`
	Delta          int64  `json:"delta"`
	Date           string `json:"date,omitempty"`
	ConfigVersion  string `json:"config_version,omitempty"`
	Reason         string `json:"reason,omitempty"`
	RedemptionID   string `json:"redemption_id,omitempty"`
	Ref            string `json:"ref,omitempty"`
	// Rescore entries (a credited day re-scored after late data, kind
	// "rescore"): the day's scoring revision, its points after the
	// correction (Delta is the change), and the leaf index of the credit it
	// corrects (Ref is that credit's id). Read from the signed entry bytes.
	Revision     int64   `json:"revision,omitempty"`
	DayPoints    *int64  `json:"day_points,omitempty"`
	RefLeafIndex *uint64 `json:"ref_leaf_index,omitempty"`
	// Campaign is the campaign that paid a bonus (kind "bonus"), with what
	// its rule asked for before the budget and the credit it rests on
	// (docs/campaigns.md): decoded from the entry bytes.
	Campaign   string          `json:"campaign,omitempty"`
	Requested  int64           `json:"requested,omitempty"`
	CreditLeaf *int64          `json:"credit_leaf,omitempty"`
	Entry      []byte          `json:"entry"`
	LeafHash   string          `json:"leaf_hash"`
	Proof      *InclusionProof `json:"proof,omitempty"`
	// ProofError says why Proof is missing: the ledger reader has not
	// reached the entry yet, the ledger's proof API is out of reach, or the
	// stored entry does not match its leaf.
	ProofError string `json:"proof_error,omitempty"`
}

// Points is the answer of /points: the balance and the vehicle's ledger
// entries, newest first; every proof on a page (and on the pages after it)
// is against the same tree, whose signed checkpoint the first page gives.
type Points struct {
	VehicleID string `json:"vehicle_id,omitempty"`
	Account   string `json:"account,omitempty"` // /v1/accounts/{owner}/entries
	// Opening links the vehicle (or account) to the pseudonym its ledger
	// entries carry (absent when it has no key yet, or was erased).
	Opening     *Opening      `json:"opening,omitempty"`
	Balance     *Balance      `json:"balance,omitempty"`
	EarnedTotal *int64        `json:"vehicle_points_total,omitempty"` // sum of the vehicle's entries (first page)
	TreeSize    uint64        `json:"tree_size,omitempty"`
	Root        string        `json:"root,omitempty"`
	Checkpoint  string        `json:"checkpoint,omitempty"`
	Entries     []LedgerEntry `json:"entries"`
	NextCursor  string        `json:"next_cursor,omitempty"`
}

// rescoreFields fills a rescore's revision, day points and credit leaf
// from its canonical entry bytes (what the ledger signed).
func rescoreFields(e *LedgerEntry) {
	if e.Kind != ledger.KindRescore.String() {
		return
	}
	le, err := ledger.DecodeEntry(e.Entry)
	if err != nil || le.Kind != ledger.KindRescore {
		return // the proof check reports entries that do not match
	}
	pts, leaf := le.Points, le.RefLeaf
	e.Revision, e.DayPoints, e.RefLeafIndex = le.Revision, &pts, &leaf
}

// Opening is the owner's proof that a pseudonym is their vehicle's:
// Pseudonym = "p1:" + hex(HMAC-SHA256(Key, "minecart/vehicle/v1\x00" +
// VehicleID)[:16]) (docs/ledger.md, "Check your own credit").
type Opening struct {
	Pseudonym string `json:"pseudonym"`
	Kind      string `json:"kind"`
	VehicleID string `json:"vehicle_id,omitempty"`
	Account   string `json:"account,omitempty"` // the opening of an account's pseudonym
	Key       string `json:"key"`               // 64 hex digits
}

// ledgerName is the name the ledger entries give identity id of kind
// k: its pseudonym (and the opening), or id when no resolver is
// configured. An identity without a key (none made yet, or erased) has
// no entries: "".
func (h *handler) ledgerName(ctx context.Context, k pseudonym.Kind, id string, out *Points) (string, error) {
	if h.cfg.Pseudonyms == nil {
		return id, nil
	}
	o, err := h.cfg.Pseudonyms.Lookup(ctx, k, id)
	if errors.Is(err, pseudonym.ErrUnknown) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pseudonyms: %w", err)
	}
	out.Opening = &Opening{Pseudonym: o.Pseudonym, Kind: string(o.Kind), Key: hex.EncodeToString(o.Key)}
	if k == pseudonym.Account {
		out.Opening.Account = o.ID
	} else {
		out.Opening.VehicleID = o.ID
	}
	return o.Pseudonym, nil
}

func (h *handler) points(ctx context.Context, vin string, r *http.Request) (any, error) {
	return h.ledgerEntries(ctx, "vehicle_id", vin, r)
}

// AccountEntries is the answer of GET /v1/accounts/{owner}/entries: the
// ledger entries charged to or corrected on the account (debits,
// adjustments, outgoing transfers: the entries whose account field is
// the owner), newest first, each with its inclusion proof as in /points.
// Credits are the vehicles' (/points); transfers into the account
// (counter_account = the owner) are listed too.
type AccountEntries = Points

// ledgerEntries lists the entries whose column col is id (vehicle_id for
// /points, account for /v1/accounts/{owner}/entries).
func (h *handler) ledgerEntries(ctx context.Context, col, id string, r *http.Request) (*Points, error) {
	vin := id
	limit, err := intParam(r, "limit", DefaultEntries, 1, MaxEntries)
	if err != nil {
		return nil, err
	}
	key := queryKey("points", col, vin)
	cur, more, err := decodeCursor(r.URL.Query().Get("cursor"), key)
	if err != nil {
		return nil, err
	}
	if !more {
		cur = cursor{Query: key, Leaf: ^uint64(0)}
	}
	out := Points{Entries: []LedgerEntry{}}
	where := "vehicle_id = {v:String}"
	if col == "account" {
		out.Account = id
		// Its debits, adjustments and outgoing transfers (account), and
		// the transfers into it (counter_account, migration 0009).
		where = "(account = {v:String} OR counter_account = {v:String})"
	} else {
		out.VehicleID = id
	}
	kind := pseudonym.Vehicle
	if col == "account" {
		kind = pseudonym.Account
	}
	name, err := h.ledgerName(ctx, kind, id, &out)
	if err != nil {
		return nil, err
	}
	if name == "" {
		// No key: no entry names it (none yet, or erased and unlinkable).
		// An erased vehicle's telemetry is gone too: 404.
		if col == "vehicle_id" {
			if err := h.mustKnow(ctx, vin); err != nil {
				return nil, err
			}
		}
		return &out, nil
	}
	p := clickhouse.Parameters{"v": name, "before": strconv.FormatUint(cur.Leaf, 10), "lim": strconv.Itoa(limit + 1)}
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT leaf_index, block_height, block_time, toString(kind), id, account, counter_account, delta, date, config_version,
			reason, redemption_id, ref, entry
		FROM ledger_entries
		WHERE `+where+` AND leaf_index < {before:UInt64}
		ORDER BY leaf_index DESC
		LIMIT 1 BY leaf_index
		LIMIT {lim:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("ledger entries: %w", err)
	}
	defer rows.Close()
	hasMore := false
	for rows.Next() {
		var (
			e     LedgerEntry
			date  *time.Time
			entry string
		)
		if err := rows.Scan(&e.LeafIndex, &e.BlockHeight, &e.BlockTime, &e.Kind, &e.ID, &e.Account, &e.CounterAccount, &e.Delta, &date,
			&e.ConfigVersion, &e.Reason, &e.RedemptionID, &e.Ref, &entry); err != nil {
			return nil, fmt.Errorf("ledger entries: %w", err)
		}
		if len(out.Entries) == limit {
			cur.Leaf, hasMore = out.Entries[limit-1].LeafIndex, true
			break
		}
		e.BlockTime = e.BlockTime.UTC()
		if date != nil {
			e.Date = date.Format(time.DateOnly)
		}
		e.Entry = []byte(entry)
		e.LeafHash = merkle.HashLeaf(e.Entry).String()
		rescoreFields(&e)
		if e.Kind == ledger.KindBonus.String() {
			if b, err := ledger.DecodeEntry(e.Entry); err == nil {
				e.Campaign, e.Requested, e.CreditLeaf = b.Campaign, b.Requested, &b.CreditLeaf
			}
		}
		out.Entries = append(out.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger entries: %w", err)
	}
	if !more && col == "vehicle_id" {
		if err := h.firstPage(ctx, vin, name, &out); err != nil {
			return nil, err
		}
	}
	if h.cfg.Proofs != nil {
		if err := h.prove(ctx, &out, &cur); err != nil {
			return nil, err
		}
	}
	if hasMore {
		out.NextCursor = cur.encode()
	}
	return &out, nil
}

// firstPage adds the balance and the vehicle's total, and answers 404 for
// a vehicle minecart knows nothing of.
func (h *handler) firstPage(ctx context.Context, vin, name string, out *Points) error {
	var total int64
	var n uint64
	if err := h.cfg.Conn.QueryRow(bind(ctx, clickhouse.Parameters{"v": name}),
		`SELECT count(), sum(delta) FROM (SELECT leaf_index, any(delta) AS delta FROM ledger_entries
			WHERE vehicle_id = {v:String} GROUP BY leaf_index)`).Scan(&n, &total); err != nil {
		return fmt.Errorf("ledger total: %w", err)
	}
	if n == 0 {
		if err := h.mustKnow(ctx, vin); err != nil {
			return err
		}
	}
	out.EarnedTotal = &total
	if h.cfg.Balances != nil {
		b, err := h.cfg.Balances.VehicleBalance(ctx, vin)
		if err != nil {
			return fmt.Errorf("balance: %w", err)
		}
		out.Balance = &b
	}
	return nil
}

// Proof errors of /points entries the ledger could not prove.
const (
	proofNotYet      = "the ledger reader has not reached this entry yet"
	proofUnavailable = "ledger proofs unavailable"
)

// prove attaches inclusion proofs, all against one tree: the head's on the
// first page (remembered in the cursor for the pages after it). A proof
// API out of reach (a remote ledger restarting: any error but not found and
// bad request) is like an entry not reached yet: the entries get a
// proof_error and the page is answered; after the first such error the
// rest of the page is not asked for, and it is logged once.
func (h *handler) prove(ctx context.Context, out *Points, cur *cursor) error {
	var unavailable error
	for i := range out.Entries {
		e := &out.Entries[i]
		if unavailable != nil {
			e.ProofError = proofUnavailable
			continue
		}
		if cur.TreeSize != 0 && e.LeafIndex >= cur.TreeSize {
			e.ProofError = proofNotYet
			continue
		}
		pr, err := h.cfg.Proofs.InclusionProof(ctx, e.LeafIndex, cur.TreeSize)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			e.ProofError = proofNotYet
			continue
		case errors.Is(err, proofs.ErrBadRequest):
			return fmt.Errorf("proof of leaf %d: %w", e.LeafIndex, err)
		case err != nil:
			unavailable = err
			e.ProofError = proofUnavailable
			continue
		}
		if pr.LeafHash != e.LeafHash {
			h.cfg.Logger.Error("stored ledger entry does not match the ledger", "leaf", e.LeafIndex,
				"stored", e.LeafHash, "ledger", pr.LeafHash)
			e.ProofError = "the stored entry does not match the ledger's leaf " + pr.LeafHash
			continue
		}
		if cur.TreeSize == 0 {
			cur.TreeSize = pr.TreeSize
		}
		if out.TreeSize == 0 {
			out.TreeSize, out.Root, out.Checkpoint = pr.TreeSize, pr.Root, pr.Checkpoint
		}
		e.Proof = &InclusionProof{TreeSize: pr.TreeSize, Root: pr.Root, Hashes: pr.Proof}
	}
	if unavailable != nil {
		h.cfg.Logger.Warn("ledger proofs unavailable: entries answered without proofs", "vehicle", out.VehicleID, "err", unavailable)
	}
	return nil
}

// accountEntries answers GET /v1/accounts/{owner}/entries: the account's
// own entries (AccountEntries), for its owner and operators.
func (h *handler) accountEntries(w http.ResponseWriter, r *http.Request) {
	h.answer(w, r, "account_entries", func() int {
		acct := r.PathValue("owner")
		if err := ids.Owner(acct); err != nil {
			return writeError(w, http.StatusBadRequest, "owner: "+err.Error())
		}
		if p, _ := auth.Caller(r.Context()); auth.CanReadAccount(p, acct) != nil {
			return writeError(w, http.StatusForbidden, "account "+acct+" is not yours")
		}
		return h.respond(w, r, "account entries", func(ctx context.Context) (any, error) {
			return h.ledgerEntries(ctx, "account", acct, r)
		}, "account", acct)
	})
}
