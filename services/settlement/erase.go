package settlement

import (
	"cmp"
	"slices"
)

// OpenHold is something that names an account and has not settled yet:
// a redemption whose hold is requested or open (PENDING, CONFIRMED), or
// an open pending transfer (kind 5, flags pending) from or to it.
type OpenHold struct {
	Redemption  string // the redemption id ("" for a plain pending transfer)
	Transfer    string // the pending transfer's id ("" while the hold is only requested)
	Partner     string // for a redemption
	Status      string // the redemption's status, or PENDING for a transfer
	Points      int64
	ExpiresAtMs int64 // the hold's deadline in ledger time (0: none or not yet in the ledger)
}

// OpenHolds lists what must settle before account's pseudonym key may be
// destroyed (`minecart accounts erase`, docs/ledger.md "Erasure with an
// open hold"): the post, void or expiry of each of them is a ledger entry
// naming the account, which without its key would get a new pseudonym
// (a new key, linking the erased account again) instead of the hold's.
// In redemption, then transfer id order.
func (b *Book) OpenHolds(account string) []OpenHold {
	var out []OpenHold
	holds := map[string]bool{}
	for _, r := range b.redemptions {
		if r.Owner != account || (r.Status != StatusPending && r.Status != StatusConfirmed) {
			continue
		}
		h := OpenHold{Redemption: r.ID, Transfer: r.Hold, Partner: r.Partner, Status: string(r.Status), Points: r.Points}
		if x, ok := b.transfers[r.Hold]; ok && r.Hold != "" {
			h.ExpiresAtMs = x.ExpiresAtMs
			holds[r.Hold] = true
		}
		out = append(out, h)
	}
	for id := range b.openPending {
		x := b.transfers[id]
		if holds[id] || (x.Debit != account && x.Credit != account) {
			continue
		}
		out = append(out, OpenHold{Redemption: x.Redemption, Transfer: id, Status: string(PendingOpen), Points: x.Amount, ExpiresAtMs: x.ExpiresAtMs})
	}
	slices.SortFunc(out, func(x, y OpenHold) int {
		plain := func(h OpenHold) int {
			if h.Redemption == "" {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(plain(x), plain(y)), cmp.Compare(x.Redemption, y.Redemption), cmp.Compare(x.Transfer, y.Transfer))
	})
	return out
}
