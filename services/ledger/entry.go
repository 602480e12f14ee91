// Package ledger is minecart's reward ledger: an append-only, signed,
// RFC 6962 Merkle log of credits (vehicle-day rewards), debits (redemptions)
// and operator adjustments. This package is the pure part, with no I/O but
// files: entry and block encodings, the book that appends and checks
// blocks, the verifier, exports, proof bundles, keys and checkpoints. The
// stage (ledger/stage), the blocks topic reader (ledger/blocks) and the
// proof API (ledger/proofs) are thin layers over it. docs/ledger.md defines
// every encoding byte by byte.
package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the kind of a ledger entry.
type Kind uint8

// Entry kinds; the numbers are the kind byte of the canonical encoding.
const (
	KindCredit     Kind = 1 // a vehicle-day reward from a DailyScore
	KindDebit      Kind = 2 // points taken out by a redemption
	KindAdjustment Kind = 3 // an operator's or a late-data correction, with a reason
	KindRescore    Kind = 4 // a credited vehicle-day re-scored after late data: the signed change (docs/ledger.md "Rescore")
	KindTransfer   Kind = 5 // a transfer between two accounts, or one phase of a two-phase transfer
	KindErasure    Kind = 8 // an identity's pseudonym key destroyed (docs/ledger.md, Erasure)
	KindCampaign   Kind = 6 // a partner's campaign action: key, submit, pause, resume, end (docs/campaigns.md)
	KindBonus      Kind = 7 // points a campaign pays on one credit (docs/campaigns.md)
)

// Campaign actions (the action field of a campaign entry).
const (
	ActionKey    = "key"    // an operator registers (or rotates) a partner's Ed25519 key
	ActionSubmit = "submit" // the partner's signed definition: the campaign starts, active
	ActionPause  = "pause"  // active -> paused (signed by the partner)
	ActionResume = "resume" // paused -> active (signed by the partner)
	ActionEnd    = "end"    // active or paused -> ended, for good (signed by the partner)
)

func (k Kind) String() string {
	switch k {
	case KindCredit:
		return "credit"
	case KindDebit:
		return "debit"
	case KindAdjustment:
		return "adjustment"
	case KindRescore:
		return "rescore"
	case KindTransfer:
		return "transfer"
	case KindCampaign:
		return "campaign"
	case KindBonus:
		return "bonus"
	case KindErasure:
		return "erasure"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// entryVersion is the first byte of every canonical entry.
const entryVersion = 1

// maxField bounds one string or bytes field of an entry.
const maxField = 1 << 16

// ErrEntry marks an entry that is not valid or not canonical.
var ErrEntry = errors.New("invalid ledger entry")

// Entry is one ledger entry. Which fields a kind uses, and in which order
// they are encoded, is fixed by Encode (and docs/ledger.md).
type Entry struct {
	Kind Kind
	// ID is the credit's score id "<vehicle>/<date>" or the request id of a
	// debit or adjustment: the key that makes appending idempotent.
	ID        string
	VehicleID string
	Account   string // debit, adjustment: the account charged or corrected; transfer: the debit side
	// CounterAccount is a transfer's credit side (the account paid).
	CounterAccount string

	// Credit fields, copied from the DailyScore.
	Date          string
	TZ            string
	WindowEndMs   int64
	ConfigVersion string
	Points        int64
	Score         float64
	EventsHash    []byte
	Flags         []string // sorted, no duplicates

	// Debit and adjustment fields.
	Amount        int64 // debit: points taken (> 0); adjustment: signed change (!= 0)
	Reason        string
	Partner       string // debit
	Item          string // debit
	RedemptionID  string // debit
	Ref           string // adjustment: id of the credit it corrects, if any; transfer: the pending transfer's id; rescore: the credit's score id
	RequestedAtMs int64

	// Transfer fields (kind 5, docs/ledger.md "Transfers"); Amount, Ref
	// and RequestedAtMs are shared with the kinds above.
	TransferFlags TransferFlags
	TimeoutMs     int64 // pending: ledger-time timeout in ms (0: none)

	// Campaign and bonus fields (docs/campaigns.md). Partner and
	// RequestedAtMs serve the campaign entry too; Amount is the bonus paid.
	Campaign   string // campaign id "<partner>/<name>"
	Action     string // campaign: ActionKey, ActionSubmit, ...
	RuleHash   []byte // campaign (not key), bonus: SHA-256 of the canonical definition
	Definition []byte // campaign submit: the canonical definition
	PublicKey  []byte // campaign key: the partner's Ed25519 public key (32 bytes)
	Signature  []byte // campaign submit, pause, resume, end: the partner's Ed25519 signature
	CreditLeaf int64  // bonus: leaf index of the credit it rests on
	CreditHash []byte // bonus: that credit's leaf hash (32 bytes)
	Inputs     []byte // bonus: the canonical inputs the rule was evaluated on
	Requested  int64  // bonus: the rule's clamped result, before the budget

	// Rescore fields (with Ref, Points: the day's new points, Amount: the
	// signed change, EventsHash, ConfigVersion, Flags, Reason; Date is the
	// date part of Ref, not encoded).
	RefLeaf  uint64 // leaf index of the credit entry it corrects
	Revision int64  // the DailyScore revision it books (>= 1)
}

// RescoreID is the deterministic id of the rescore entry that books
// revision rev of the credited score id: a replay yields the same id, so
// the book never appends it twice.
func RescoreID(scoreID string, rev int64) string {
	return "rescore/" + scoreID + "/" + strconv.FormatInt(rev, 10)
}

// Delta is the entry's effect on its owner's balance.
func (e *Entry) Delta() int64 {
	switch e.Kind {
	case KindCredit:
		return e.Points
	case KindDebit:
		return -e.Amount
	case KindTransfer:
		if e.TransferFlags.Moves() {
			return -e.Amount // on Account; CounterAccount gets +Amount
		}
		return 0
	case KindCampaign:
		return 0
	default:
		return e.Amount
	}
}

// Key is the Kafka key of the entry on the entries topic: the account of a
// debit or adjustment that names one, else the vehicle id.
func (e *Entry) Key() string {
	if e.Kind == KindCampaign {
		return e.Campaign
	}
	if e.Kind != KindCredit && e.Account != "" {
		return e.Account
	}
	return e.VehicleID
}

// Validate checks the rules every entry of its kind must meet.
func (e *Entry) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s %q: %s: %w", e.Kind, e.ID, fmt.Sprintf(format, a...), ErrEntry)
	}
	if e.ID == "" {
		return bad("empty id")
	}
	if err := e.checkStrings(); err != nil {
		return bad("%v", err)
	}
	if e.Kind != KindTransfer && (e.CounterAccount != "" || e.TransferFlags != 0 || e.TimeoutMs != 0) {
		return bad("counter account, transfer flags or timeout set on a %s", e.Kind)
	}
	switch e.Kind {
	case KindCredit:
		if e.VehicleID == "" {
			return bad("no vehicle id")
		}
		if e.Points < 0 {
			return bad("negative points %d", e.Points)
		}
		if math.IsNaN(e.Score) || math.IsInf(e.Score, 0) {
			return bad("score %v", e.Score)
		}
		if len(e.EventsHash) > maxField {
			return bad("events hash too long")
		}
		for i := 1; i < len(e.Flags); i++ {
			if e.Flags[i-1] >= e.Flags[i] {
				return bad("flags not sorted and unique")
			}
		}
	case KindDebit:
		if e.Account == "" {
			return bad("no account")
		}
		if e.Amount <= 0 {
			return bad("debit amount %d, want > 0", e.Amount)
		}
	case KindAdjustment:
		if e.Account == "" && e.VehicleID == "" {
			return bad("neither account nor vehicle")
		}
		if e.Amount == 0 {
			return bad("zero adjustment")
		}
		if e.Reason == "" {
			return bad("no reason")
		}
	case KindRescore:
		if e.VehicleID == "" || e.Account != "" {
			return bad("a rescore names a vehicle and no account")
		}
		date, ok := strings.CutPrefix(e.Ref, e.VehicleID+"/")
		if !ok || date == "" || strings.Contains(date, "/") {
			return bad("ref %q is not <vehicle>/<date> of vehicle %q", e.Ref, e.VehicleID)
		}
		if e.Revision < 1 {
			return bad("revision %d, want >= 1", e.Revision)
		}
		if e.ID != RescoreID(e.Ref, e.Revision) {
			return bad("id, want %q", RescoreID(e.Ref, e.Revision))
		}
		if e.Points < 0 || e.Amount > e.Points {
			return bad("points %d with delta %d: the points before would be negative", e.Points, e.Amount)
		}
		if len(e.EventsHash) > maxField {
			return bad("events hash too long")
		}
		for i := 1; i < len(e.Flags); i++ {
			if e.Flags[i-1] >= e.Flags[i] {
				return bad("flags not sorted and unique")
			}
		}
		if e.Reason == "" {
			return bad("no reason")
		}
	case KindTransfer:
		if err := e.validateTransfer(); err != nil {
			return bad("%v", err)
		}
	case KindCampaign:
		if e.Partner == "" || e.Campaign == "" {
			return bad("no partner or campaign")
		}
		switch e.Action {
		case ActionKey:
			if len(e.PublicKey) != 32 || len(e.RuleHash) != 0 || len(e.Definition) != 0 || len(e.Signature) != 0 {
				return bad("a key action carries a 32-byte public key and nothing else")
			}
		case ActionSubmit, ActionPause, ActionResume, ActionEnd:
			if len(e.RuleHash) != 32 || len(e.Signature) != 64 || len(e.PublicKey) != 0 {
				return bad("%s: want a 32-byte rule hash, a 64-byte signature, no public key", e.Action)
			}
			if (e.Action == ActionSubmit) != (len(e.Definition) > 0) || len(e.Definition) > maxField {
				return bad("a definition goes with submit and only with submit")
			}
		default:
			return bad("unknown action %q", e.Action)
		}
	case KindBonus:
		if e.VehicleID == "" || e.Campaign == "" {
			return bad("no vehicle or campaign")
		}
		if len(e.RuleHash) != 32 || len(e.CreditHash) != 32 || e.CreditLeaf < 0 {
			return bad("want a 32-byte rule hash, a 32-byte credit hash, a leaf index >= 0")
		}
		if e.Amount <= 0 || e.Requested < e.Amount {
			return bad("amount %d of %d requested: want 0 < amount <= requested", e.Amount, e.Requested)
		}
		if len(e.Inputs) == 0 || len(e.Inputs) > maxField {
			return bad("inputs: %d bytes", len(e.Inputs))
		}
	case KindErasure:
		if (e.Account == "") == (e.VehicleID == "") {
			return bad("an erasure names exactly one of account and vehicle")
		}
		if e.Amount != 0 {
			return bad("erasure amount %d, want 0", e.Amount)
		}
		if e.Reason == "" {
			return bad("no reason")
		}
	default:
		return bad("unknown kind")
	}
	return nil
}

// validField reports whether a string field is short enough and UTF-8
// (ASCII checked byte by byte, the rest by utf8.ValidString).
func validField(s string) bool {
	if len(s) > maxField {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// checkStrings checks every string field's length and UTF-8 validity:
// all at once (one pass, no copies), and field by field only to say
// what is wrong.
func (e *Entry) checkStrings() error {
	ok := validField(e.ID) && validField(e.VehicleID) && validField(e.Account) && validField(e.Date) &&
		validField(e.TZ) && validField(e.ConfigVersion) && validField(e.Reason) && validField(e.Partner) &&
		validField(e.Item) && validField(e.RedemptionID) && validField(e.Ref) && validField(e.CounterAccount) &&
		validField(e.Campaign) && validField(e.Action)
	for _, f := range e.Flags {
		ok = ok && validField(f)
	}
	if ok {
		return nil
	}
	return e.checkStringsSlow()
}

func (e *Entry) checkStringsSlow() error {
	check := func(s string) error {
		if len(s) > maxField {
			return fmt.Errorf("field longer than %d bytes", maxField)
		}
		if !utf8.ValidString(s) {
			return errors.New("field not UTF-8")
		}
		return nil
	}
	for _, s := range [...]string{e.ID, e.VehicleID, e.Account, e.Date, e.TZ, e.ConfigVersion, e.Reason, e.Partner, e.Item, e.RedemptionID, e.Ref, e.CounterAccount, e.Campaign, e.Action} {
		if err := check(s); err != nil {
			return err
		}
	}
	for _, s := range e.Flags {
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}

// Encode returns the canonical encoding of a valid entry (docs/ledger.md):
//
//	credit:     01 01 id vehicle date tz window_end config points score events_hash flags
//	debit:      01 02 id account vehicle amount reason partner item redemption requested_at
//	adjustment: 01 03 id account vehicle amount reason ref requested_at
//	rescore:    01 04 id vehicle ref ref_leaf revision points delta events_hash config flags reason
//	transfer:   01 05 id account counter_account amount flags pending_id timeout_ms requested_at
//	campaign:   01 06 id partner campaign action rule_hash definition public_key signature requested_at
//	bonus:      01 07 id vehicle account campaign rule_hash credit_leaf credit_hash inputs requested amount window_end date
//	erasure:    01 08 id account vehicle reason requested_at
//
// with strings and bytes as a 4-byte big-endian length then the bytes,
// integers as 8-byte big-endian two's complement, the score as its IEEE 754
// binary64 bits big-endian, and flags as a 4-byte count then each string.
func (e *Entry) Encode() ([]byte, error) {
	return e.AppendEncode(nil)
}

// AppendEncode appends the canonical encoding to dst.
func (e *Entry) AppendEncode(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	b := append(dst, entryVersion, byte(e.Kind))
	b = appendStr(b, e.ID)
	switch e.Kind {
	case KindCredit:
		b = appendStr(b, e.VehicleID)
		b = appendStr(b, e.Date)
		b = appendStr(b, e.TZ)
		b = binary.BigEndian.AppendUint64(b, uint64(e.WindowEndMs))
		b = appendStr(b, e.ConfigVersion)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Points))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.Score))
		b = appendBytes(b, e.EventsHash)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Flags)))
		for _, f := range e.Flags {
			b = appendStr(b, f)
		}
	case KindDebit:
		b = appendStr(b, e.Account)
		b = appendStr(b, e.VehicleID)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		b = appendStr(b, e.Reason)
		b = appendStr(b, e.Partner)
		b = appendStr(b, e.Item)
		b = appendStr(b, e.RedemptionID)
		b = binary.BigEndian.AppendUint64(b, uint64(e.RequestedAtMs))
	case KindAdjustment:
		b = appendStr(b, e.Account)
		b = appendStr(b, e.VehicleID)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		b = appendStr(b, e.Reason)
		b = appendStr(b, e.Ref)
		b = binary.BigEndian.AppendUint64(b, uint64(e.RequestedAtMs))
	case KindRescore:
		b = appendStr(b, e.VehicleID)
		b = appendStr(b, e.Ref)
		b = binary.BigEndian.AppendUint64(b, e.RefLeaf)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Revision))
		b = binary.BigEndian.AppendUint64(b, uint64(e.Points))
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		b = appendBytes(b, e.EventsHash)
		b = appendStr(b, e.ConfigVersion)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Flags)))
		for _, f := range e.Flags {
			b = appendStr(b, f)
		}
		b = appendStr(b, e.Reason)
	case KindTransfer:
		b = appendStr(b, e.Account)
		b = appendStr(b, e.CounterAccount)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		b = binary.BigEndian.AppendUint64(b, uint64(e.TransferFlags))
		b = appendStr(b, e.Ref)
		b = binary.BigEndian.AppendUint64(b, uint64(e.TimeoutMs))
		b = binary.BigEndian.AppendUint64(b, uint64(e.RequestedAtMs))
	case KindCampaign:
		b = appendStr(b, e.Partner)
		b = appendStr(b, e.Campaign)
		b = appendStr(b, e.Action)
		b = appendBytes(b, e.RuleHash)
		b = appendBytes(b, e.Definition)
		b = appendBytes(b, e.PublicKey)
		b = appendBytes(b, e.Signature)
		b = binary.BigEndian.AppendUint64(b, uint64(e.RequestedAtMs))
	case KindBonus:
		b = appendStr(b, e.VehicleID)
		b = appendStr(b, e.Account)
		b = appendStr(b, e.Campaign)
		b = appendBytes(b, e.RuleHash)
		b = binary.BigEndian.AppendUint64(b, uint64(e.CreditLeaf))
		b = appendBytes(b, e.CreditHash)
		b = appendBytes(b, e.Inputs)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Requested))
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		b = binary.BigEndian.AppendUint64(b, uint64(e.WindowEndMs))
		b = appendStr(b, e.Date)
	case KindErasure:
		b = appendStr(b, e.Account)
		b = appendStr(b, e.VehicleID)
		b = appendStr(b, e.Reason)
		b = binary.BigEndian.AppendUint64(b, uint64(e.RequestedAtMs))
	}
	return b, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// DecodeEntry parses a canonical entry. It rejects anything Encode would not
// produce byte for byte: unknown version or kind, short or trailing bytes,
// invalid fields, unsorted flags.
func DecodeEntry(b []byte) (Entry, error) {
	r := reader{b: b}
	var e Entry
	if v := r.byte(); v != entryVersion && r.err == nil {
		return e, fmt.Errorf("entry version %d, want %d: %w", v, entryVersion, ErrEntry)
	}
	e.Kind = Kind(r.byte())
	e.ID = r.str()
	switch e.Kind {
	case KindCredit:
		e.VehicleID = r.str()
		e.Date = r.str()
		e.TZ = r.str()
		e.WindowEndMs = r.i64()
		e.ConfigVersion = r.str()
		e.Points = r.i64()
		e.Score = math.Float64frombits(uint64(r.i64()))
		e.EventsHash = r.bytes()
		n := r.u32()
		if r.err == nil && uint64(n) > uint64(len(r.b)) {
			r.fail()
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			e.Flags = append(e.Flags, r.str())
		}
	case KindDebit:
		e.Account = r.str()
		e.VehicleID = r.str()
		e.Amount = r.i64()
		e.Reason = r.str()
		e.Partner = r.str()
		e.Item = r.str()
		e.RedemptionID = r.str()
		e.RequestedAtMs = r.i64()
	case KindAdjustment:
		e.Account = r.str()
		e.VehicleID = r.str()
		e.Amount = r.i64()
		e.Reason = r.str()
		e.Ref = r.str()
		e.RequestedAtMs = r.i64()
	case KindRescore:
		e.VehicleID = r.str()
		e.Ref = r.str()
		e.RefLeaf = r.u64()
		e.Revision = r.i64()
		e.Points = r.i64()
		e.Amount = r.i64()
		e.EventsHash = r.bytes()
		e.ConfigVersion = r.str()
		n := r.u32()
		if r.err == nil && uint64(n) > uint64(len(r.b)) {
			r.fail()
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			e.Flags = append(e.Flags, r.str())
		}
		e.Reason = r.str()
		e.Date = strings.TrimPrefix(e.Ref, e.VehicleID+"/")
	case KindTransfer:
		e.Account = r.str()
		e.CounterAccount = r.str()
		e.Amount = r.i64()
		e.TransferFlags = TransferFlags(r.u64())
		e.Ref = r.str()
		e.TimeoutMs = r.i64()
		e.RequestedAtMs = r.i64()
	case KindCampaign:
		e.Partner = r.str()
		e.Campaign = r.str()
		e.Action = r.str()
		e.RuleHash = r.bytes()
		e.Definition = r.bytes()
		e.PublicKey = r.bytes()
		e.Signature = r.bytes()
		e.RequestedAtMs = r.i64()
	case KindBonus:
		e.VehicleID = r.str()
		e.Account = r.str()
		e.Campaign = r.str()
		e.RuleHash = r.bytes()
		e.CreditLeaf = r.i64()
		e.CreditHash = r.bytes()
		e.Inputs = r.bytes()
		e.Requested = r.i64()
		e.Amount = r.i64()
		e.WindowEndMs = r.i64()
		e.Date = r.str()
	case KindErasure:
		e.Account = r.str()
		e.VehicleID = r.str()
		e.Reason = r.str()
		e.RequestedAtMs = r.i64()
	default:
		if r.err == nil {
			return e, fmt.Errorf("entry kind %d: %w", e.Kind, ErrEntry)
		}
	}
	if r.err != nil {
		return e, fmt.Errorf("entry truncated: %w", ErrEntry)
	}
	if len(r.b) != 0 {
		return e, fmt.Errorf("%d trailing bytes after entry: %w", len(r.b), ErrEntry)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	// Canonical: -0 scores, for one, decode fine but are not what Encode makes
	// of the decoded value only if bits differ; compare to be exact.
	again, _ := e.Encode()
	if !bytes.Equal(again, b) {
		return e, fmt.Errorf("entry not canonical: %w", ErrEntry)
	}
	return e, nil
}

// reader decodes big-endian fields, remembering the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

var errShort = errors.New("short input")

func (r *reader) take(n uint64) []byte {
	if r.err != nil || uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u32() uint32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) u64() uint64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *reader) i64() int64 { return int64(r.u64()) }

func (r *reader) bytes() []byte {
	n := r.u32()
	v := r.take(uint64(n))
	if v == nil {
		return nil
	}
	return slices.Clone(v)
}

func (r *reader) str() string {
	n := r.u32()
	return string(r.take(uint64(n)))
}
