package campaign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// Report is what Audit found: counts and, per campaign, what it paid.
type Report struct {
	Campaigns int              `json:"campaigns"`
	Bonuses   int              `json:"bonuses"`
	Paid      int64            `json:"paid"`
	Spent     map[string]int64 `json:"spent"` // campaign id -> points paid
	// Eligible counts the (credit, campaign) pairs the book alone shows a
	// bonus is due for (the rule's result does not depend on the score's
	// fields the credit does not carry); Undecided the pairs whose result
	// does (the audit checks those only when a bonus was paid); Pending
	// the eligible pairs of the book's last window ends not paid yet (the
	// ledger pays them once no credit of their window end is due).
	Eligible  int `json:"eligible"`
	Undecided int `json:"undecided"`
	Pending   int `json:"pending"`
}

// ErrSkipped marks a book where a credit eligible for a campaign got no
// bonus while the campaign was active with budget left.
var ErrSkipped = errors.New("eligible credit skipped")

// Audit re-verifies the book from src (every block, as ledger.Verify) and
// recomputes every campaign entry and every bonus from the book alone,
// with its own state, not the book's: each key, definition and signature;
// each status change; for each bonus, the credit it rests on (leaf index,
// leaf hash, vehicle, window end, date), its inputs against that credit
// (points, score, flags, date, tz, rules version, weekday, tenure from the
// vehicle's first credit), the rule's result, the budget (the amount is
// min(requested, what is left), and only the last bonus of a campaign may
// be cut) and the fixed order of the bonuses appended together. The first
// discrepancy is the error.
func Audit(ctx context.Context, src ledger.BlockSource, pub ed25519.PublicKey) (Report, error) {
	a := auditor{
		rep:     Report{Spent: make(map[string]int64)},
		keys:    make(map[string][]byte),
		camps:   make(map[string]*auditCamp),
		credits: make(map[uint64]ledger.Entry),
		first:   make(map[string]string),
		expect:  make(map[string]expected),
	}
	book := ledger.NewBook()
	var failed error
	err := src.Blocks(ctx, func(rec ledger.Record) error {
		if failed != nil || book.ApplyRecord(rec, pub) != nil {
			return nil // ledger.Verify reports bad blocks; the audit reads the book they leave
		}
		for i, raw := range rec.Block.Entries {
			leaf := rec.Block.Header.FirstIndex + uint64(i)
			e, err := ledger.DecodeEntry(raw)
			if err == nil {
				err = a.entry(&e, leaf, raw)
			}
			if err != nil {
				failed = fmt.Errorf("campaign audit: entry %d (block %d): %w", leaf, rec.Block.Header.Height, err)
				return nil
			}
		}
		return nil
	})
	if err == nil {
		err = failed
	}
	if err == nil && a.prev != nil {
		err = a.settled(a.prev.WindowEndMs, true)
	}
	a.rep.Pending = len(a.expect)
	return a.rep, err
}

type auditCamp struct {
	rule   *Rule
	status string
	spent  int64
	cut    bool // a bonus was cut by the budget: no more may follow
	moves  int  // status changes so far
}

// expected is a bonus the book shows is due: a credit a campaign's rule
// pays for on the credit's own fields.
type expected struct {
	campaign    string
	leaf        uint64
	windowEndMs int64
	requested   int64
	moves       int // the campaign's status changes when the credit was appended
}

type auditor struct {
	rep     Report
	keys    map[string][]byte
	camps   map[string]*auditCamp
	credits map[uint64]ledger.Entry // leaf -> credit (fields the bonuses check)
	first   map[string]string       // vehicle -> date of its first credit
	prev    *ledger.Entry           // the previous entry if it was a bonus
	expect  map[string]expected     // bonus id -> a bonus due and not paid yet
}

func (a *auditor) entry(e *ledger.Entry, leaf uint64, raw []byte) error {
	prev := a.prev
	a.prev = nil
	if prev != nil && (e.Kind != ledger.KindBonus || e.WindowEndMs != prev.WindowEndMs) {
		// a release of bonuses ended: every bonus due for its window end and
		// the earlier ones was paid, or its campaign could not pay it
		if err := a.settled(prev.WindowEndMs, true); err != nil {
			return err
		}
	}
	if e.Kind == ledger.KindBonus {
		if err := a.settled(e.WindowEndMs, false); err != nil {
			return err
		}
	}
	switch e.Kind {
	case ledger.KindCredit:
		lh := merkle.HashLeaf(raw)
		a.credits[leaf] = ledger.Entry{VehicleID: e.VehicleID, Date: e.Date, TZ: e.TZ, WindowEndMs: e.WindowEndMs,
			ConfigVersion: e.ConfigVersion, Points: e.Points, Score: e.Score, Flags: e.Flags, EventsHash: lh[:]} // EventsHash holds the leaf hash here
		if _, ok := a.first[e.VehicleID]; !ok {
			a.first[e.VehicleID] = e.Date
		}
		a.eligible(e, leaf, lh[:])
	case ledger.KindCampaign:
		return a.campaign(e)
	case ledger.KindBonus:
		if err := a.bonus(e, prev); err != nil {
			return err
		}
		a.prev = e
	}
	return nil
}

func (a *auditor) campaign(e *ledger.Entry) error {
	switch e.Action {
	case ledger.ActionKey:
		a.keys[e.Partner] = slices.Clone(e.PublicKey)
		return nil
	case ledger.ActionSubmit:
		if _, dup := a.camps[e.Campaign]; dup {
			return fmt.Errorf("campaign %q submitted twice", e.Campaign)
		}
		if err := VerifySignature(e, a.keys[e.Partner]); err != nil {
			return err
		}
		d, err := ParseDefinition(e.Definition)
		if err != nil {
			return err
		}
		r, err := Compile(d)
		if err != nil {
			return err
		}
		if !bytes.Equal(r.Hash[:], e.RuleHash) || d.ID() != e.Campaign || d.Partner != e.Partner {
			return fmt.Errorf("campaign %q: rule hash, id or partner do not match the definition", e.Campaign)
		}
		a.camps[e.Campaign] = &auditCamp{rule: r, status: ledger.StatusActive}
		a.rep.Campaigns++
		return nil
	default:
		c := a.camps[e.Campaign]
		if c == nil || !bytes.Equal(c.rule.Hash[:], e.RuleHash) {
			return fmt.Errorf("%s of unknown campaign %q", e.Action, e.Campaign)
		}
		if err := VerifySignature(e, a.keys[e.Partner]); err != nil {
			return err
		}
		c.status = ledger.NextStatus(c.status, e.Action)
		c.moves++
		return nil
	}
}

func (a *auditor) bonus(e *ledger.Entry, prev *ledger.Entry) error {
	c := a.camps[e.Campaign]
	switch {
	case c == nil || !bytes.Equal(c.rule.Hash[:], e.RuleHash):
		return fmt.Errorf("bonus %q: no campaign %q with that rule hash", e.ID, e.Campaign)
	case c.status != ledger.StatusActive:
		return fmt.Errorf("bonus %q: campaign %q is %s", e.ID, e.Campaign, c.status)
	case c.cut:
		return fmt.Errorf("bonus %q: campaign %q was exhausted", e.ID, e.Campaign)
	}
	cr, ok := a.credits[uint64(e.CreditLeaf)]
	if !ok || !bytes.Equal(cr.EventsHash, e.CreditHash) {
		return fmt.Errorf("bonus %q: leaf %d is not a credit with leaf hash %x", e.ID, e.CreditLeaf, e.CreditHash)
	}
	if e.ID != BonusID(e.Campaign, e.CreditHash) || cr.VehicleID != e.VehicleID || cr.WindowEndMs != e.WindowEndMs || cr.Date != e.Date || e.Account != "" {
		return fmt.Errorf("bonus %q: id, vehicle, window end, date or account differ from its credit's", e.ID)
	}
	in, err := DecodeInputs(e.Inputs)
	if err != nil {
		return fmt.Errorf("bonus %q: %w", e.ID, err)
	}
	if in.Points != cr.Points || in.Score != cr.Score || !slices.Equal(in.Flags, cr.Flags) || in.Date != cr.Date ||
		in.TZ != cr.TZ || in.ConfigVersion != cr.ConfigVersion || in.Weekday != Weekday(dayOf(cr.Date)) ||
		in.TenureDays != TenureDays(a.first[cr.VehicleID], cr.Date) {
		return fmt.Errorf("bonus %q: inputs differ from the credit at leaf %d", e.ID, e.CreditLeaf)
	}
	if !c.rule.Def.Covers(in.Date) {
		return fmt.Errorf("bonus %q: date %s outside %s..%s", e.ID, in.Date, c.rule.Def.Start, c.rule.Def.End)
	}
	want, err := c.rule.Bonus(&in)
	if err != nil || want != e.Requested {
		return fmt.Errorf("bonus %q: requested %d, the rule gives %d (%v)", e.ID, e.Requested, want, err)
	}
	left := c.rule.Def.Budget - c.spent
	if e.Amount != min(e.Requested, left) {
		return fmt.Errorf("bonus %q: amount %d, want min(%d requested, %d left)", e.ID, e.Amount, e.Requested, left)
	}
	if prev != nil && prev.WindowEndMs == e.WindowEndMs && bonusOrder(prev, e) >= 0 {
		return fmt.Errorf("bonus %q: not in the fixed order after %q", e.ID, prev.ID)
	}
	delete(a.expect, e.ID)
	c.spent += e.Amount
	c.cut = e.Amount < e.Requested || c.spent == c.rule.Def.Budget
	a.rep.Bonuses++
	a.rep.Paid += e.Amount
	a.rep.Spent[e.Campaign] = c.spent
	return nil
}

// eligible records the bonuses the book shows are due on a credit just
// read: for each campaign active with budget left at this point of the
// book whose schedule covers the credit's date, the rule evaluated on the
// credit's fields (points, score, flags, date, tz, rules version,
// weekday, tenure), the score-only variables unknown. A result that does
// not depend on them and is above 0 is a bonus the ledger must pay.
func (a *auditor) eligible(e *ledger.Entry, leaf uint64, lh []byte) {
	var in Inputs
	ok := false
	if day, err := ParseDate(e.Date); err == nil {
		in = Inputs{Points: e.Points, Score: e.Score, Flags: e.Flags, Date: e.Date, TZ: e.TZ, ConfigVersion: e.ConfigVersion,
			Weekday: Weekday(day), TenureDays: TenureDays(a.first[e.VehicleID], e.Date)}
		ok = in.Validate() == nil // the ledger computes no bonus on inputs out of bounds
	}
	for _, id := range slices.Sorted(maps.Keys(a.camps)) {
		c := a.camps[id]
		if !ok || c.status != ledger.StatusActive || c.cut || c.spent >= c.rule.Def.Budget || !c.rule.Def.Covers(e.Date) {
			continue
		}
		n, known, err := c.rule.BookBonus(&in)
		switch {
		case !known:
			a.rep.Undecided++
		case err == nil && n > 0:
			a.rep.Eligible++
			a.expect[BonusID(id, lh)] = expected{campaign: id, leaf: leaf, windowEndMs: e.WindowEndMs, requested: n, moves: c.moves}
		}
	}
}

// settled checks the due bonuses of the window ends before windowEndMs
// (through it if through): the ledger pays a window end's bonuses
// together, in ascending window end, so once bonuses of a window end are
// appended, the earlier ones are settled, and once their release ended,
// theirs too. A due bonus not paid is an error unless its campaign could
// not pay it: exhausted (its budget spent, or a bonus cut by it), or not
// active, or its status changed since the credit (it may have been paused
// when the window end was paid).
func (a *auditor) settled(windowEndMs int64, through bool) error {
	for _, id := range slices.Sorted(maps.Keys(a.expect)) {
		x := a.expect[id]
		if x.windowEndMs > windowEndMs || (x.windowEndMs == windowEndMs && !through) {
			continue
		}
		delete(a.expect, id)
		c := a.camps[x.campaign]
		if c.cut || c.spent >= c.rule.Def.Budget || c.status != ledger.StatusActive || c.moves != x.moves {
			continue
		}
		return fmt.Errorf("bonus %q (credit at leaf %d, window end %d, rule gives %d) was not paid while campaign %q had %d left: %w",
			id, x.leaf, x.windowEndMs, x.requested, x.campaign, c.rule.Def.Budget-c.spent, ErrSkipped)
	}
	return nil
}
