package campaign

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// BonusID is the id of the bonus campaign pays on the credit with leaf
// hash creditHash: the same credit and campaign are one bonus however
// often the ledger computes it.
func BonusID(campaign string, creditHash []byte) string {
	return "bonus/" + campaign + "/" + hex.EncodeToString(creditHash)
}

// OrderKey orders the bonuses of one window end: SHA-256(campaign id ||
// 0x00 || vehicle id as the entry records it).
func OrderKey(campaign, vehicle string) [32]byte {
	b := make([]byte, 0, len(campaign)+1+len(vehicle))
	b = append(append(append(b, campaign...), 0), vehicle...)
	return sha256.Sum256(b)
}

// Candidate is the bonus rule r asks for on an appended credit, before
// the budget: ok is false when the credit's date is outside the schedule
// or the rule gives 0 (or fails: err).
func (r *Rule) Candidate(credit *ledger.Entry, leaf uint64, raw []byte, in *Inputs) (ledger.Entry, bool, error) {
	if !r.Def.Covers(credit.Date) {
		return ledger.Entry{}, false, nil
	}
	n, err := r.Bonus(in)
	if err != nil || n == 0 {
		return ledger.Entry{}, false, err
	}
	lh := merkle.HashLeaf(raw)
	return ledger.Entry{
		Kind: ledger.KindBonus, ID: BonusID(r.Def.ID(), lh[:]), VehicleID: credit.VehicleID,
		Campaign: r.Def.ID(), RuleHash: r.Hash[:], CreditLeaf: int64(leaf), CreditHash: lh[:],
		Inputs: in.Encode(), Requested: n, Amount: n, WindowEndMs: credit.WindowEndMs, Date: credit.Date,
	}, true, nil
}

// bonusOrder is the fixed order of the bonuses appended together: by
// OrderKey, then campaign id, then the credit's leaf index.
func bonusOrder(a, b *ledger.Entry) int {
	ka, kb := OrderKey(a.Campaign, a.VehicleID), OrderKey(b.Campaign, b.VehicleID)
	return cmp.Or(bytes.Compare(ka[:], kb[:]), cmp.Compare(a.Campaign, b.Campaign), cmp.Compare(a.CreditLeaf, b.CreditLeaf))
}

// Allocate applies the budgets to the candidates of one window end: in
// the fixed order, each gets min(requested, what its campaign has left);
// a campaign with nothing left (left <= 0: exhausted, paused or ended)
// pays nothing. So the last bonus a campaign pays may be the remainder of
// its budget, and then it is exhausted. The candidates are sorted in
// place; the bonuses to append are returned in order.
func Allocate(cands []ledger.Entry, left func(campaign string) int64) []ledger.Entry {
	slices.SortFunc(cands, func(a, b ledger.Entry) int { return bonusOrder(&a, &b) })
	rem := make(map[string]int64)
	out := make([]ledger.Entry, 0, len(cands))
	for _, c := range cands {
		r, ok := rem[c.Campaign]
		if !ok {
			r = left(c.Campaign)
		}
		if r <= 0 {
			rem[c.Campaign] = 0
			continue
		}
		c.Amount = min(c.Requested, r)
		rem[c.Campaign] = r - c.Amount
		out = append(out, c)
	}
	return out
}

// Left is what campaign id has left to pay in the book's state: its
// budget minus what it paid, or 0 if it is not active.
func Left(st State, rules func(id string) *Rule, id string) int64 {
	ci, ok := st.Campaign(id)
	r := rules(id)
	if !ok || r == nil || ci.Status != ledger.StatusActive {
		return 0
	}
	return max(r.Def.Budget-ci.Spent, 0)
}
