package ledger

import (
	"bytes"
	"slices"
)

// Campaign statuses, as the book's campaign entries leave them.
const (
	StatusActive = "active"
	StatusPaused = "paused"
	StatusEnded  = "ended"
)

// CampaignInfo is what the book knows of one campaign: its signed
// definition, its status after the last campaign entry naming it, and the
// points its bonuses paid so far. The definition's meaning (rule, budget,
// schedule) is services/campaign's; the book only keeps the bytes.
type CampaignInfo struct {
	ID         string
	Partner    string
	RuleHash   []byte
	Definition []byte
	Status     string
	Spent      int64  // sum of the amounts of its bonus entries
	Bonuses    int64  // number of its bonus entries
	SubmitLeaf uint64 // leaf index of the submit entry
	// history is the status before each later action, for Undo.
	history []string
}

// campaigns is the campaign state of a book, kept as entries are recorded
// and taken back by Undo.
type campaigns struct {
	keys  map[string][][]byte // partner -> registered keys, the last one current
	byID  map[string]*CampaignInfo
	order []string // campaign ids in submit order
	// first: vehicle -> its first credit in book order (its leaf, and its
	// date, the day its tenure starts, kept beside the vehicle id).
	first idIndex
}

func (c *campaigns) init() {
	if c.byID == nil {
		c.keys = make(map[string][][]byte)
		c.byID = make(map[string]*CampaignInfo)
		c.first = newIDIndex()
	}
}

// record updates the campaign state for an entry appended at leaf.
func (c *campaigns) record(e *Entry, leaf uint64) {
	c.init()
	switch e.Kind {
	case KindCredit:
		c.first.insertWith(e.VehicleID, e.Date, leaf)
	case KindBonus:
		if ci := c.byID[e.Campaign]; ci != nil {
			ci.Spent += e.Amount
			ci.Bonuses++
		}
	case KindCampaign:
		switch e.Action {
		case ActionKey:
			c.keys[e.Partner] = append(c.keys[e.Partner], slices.Clone(e.PublicKey))
		case ActionSubmit:
			if c.byID[e.Campaign] == nil {
				c.byID[e.Campaign] = &CampaignInfo{ID: e.Campaign, Partner: e.Partner, RuleHash: slices.Clone(e.RuleHash),
					Definition: slices.Clone(e.Definition), Status: StatusActive, SubmitLeaf: leaf}
				c.order = append(c.order, e.Campaign)
			}
		default:
			if ci := c.byID[e.Campaign]; ci != nil {
				ci.history = append(ci.history, ci.Status)
				ci.Status = NextStatus(ci.Status, e.Action)
			}
		}
	}
}

// undo takes back record(e, leaf); entries are undone last first.
func (c *campaigns) undo(e *Entry, leaf uint64) {
	c.init()
	switch e.Kind {
	case KindCredit:
		if f := c.first.find(e.VehicleID); f != nil && f.leaf == leaf {
			c.first.remove(e.VehicleID)
		}
	case KindBonus:
		if ci := c.byID[e.Campaign]; ci != nil {
			ci.Spent -= e.Amount
			ci.Bonuses--
		}
	case KindCampaign:
		switch e.Action {
		case ActionKey:
			if ks := c.keys[e.Partner]; len(ks) > 0 {
				if c.keys[e.Partner] = ks[:len(ks)-1]; len(ks) == 1 {
					delete(c.keys, e.Partner)
				}
			}
		case ActionSubmit:
			if ci := c.byID[e.Campaign]; ci != nil && ci.SubmitLeaf == leaf {
				delete(c.byID, e.Campaign)
				c.order = slices.DeleteFunc(c.order, func(id string) bool { return id == e.Campaign })
			}
		default:
			if ci := c.byID[e.Campaign]; ci != nil && len(ci.history) > 0 {
				ci.Status = ci.history[len(ci.history)-1]
				ci.history = ci.history[:len(ci.history)-1]
			}
		}
	}
}

// NextStatus is the status a campaign in status from moves to by action,
// or from itself if the action does not apply (pause of a paused campaign,
// anything after the end). The writer appends only actions that change
// the status; a reader applies this function to every entry.
func NextStatus(from, action string) string {
	switch {
	case from == StatusActive && action == ActionPause:
		return StatusPaused
	case from == StatusPaused && action == ActionResume:
		return StatusActive
	case from != StatusEnded && action == ActionEnd:
		return StatusEnded
	}
	return from
}

// PartnerKey is the partner's current Ed25519 key (the last key entry for
// it), or nil if none was registered.
func (b *Book) PartnerKey(partner string) []byte {
	ks := b.camp.keys[partner]
	if len(ks) == 0 {
		return nil
	}
	return ks[len(ks)-1]
}

// Campaign is the book's state of a campaign (a copy), if it was
// submitted.
func (b *Book) Campaign(id string) (CampaignInfo, bool) {
	ci := b.camp.byID[id]
	if ci == nil {
		return CampaignInfo{}, false
	}
	c := *ci
	c.history = nil
	return c, true
}

// Campaigns lists every submitted campaign in submit order (copies).
func (b *Book) Campaigns() []CampaignInfo {
	out := make([]CampaignInfo, 0, len(b.camp.order))
	for _, id := range b.camp.order {
		c, _ := b.Campaign(id)
		out = append(out, c)
	}
	return out
}

// FirstCreditDate is the date of the vehicle's first credit in book order
// ("" if it has none): day 0 of its tenure.
func (b *Book) FirstCreditDate(vehicle string) string {
	if b.camp.byID == nil {
		return ""
	}
	if f := b.camp.first.find(vehicle); f != nil {
		return b.camp.first.extra(f)
	}
	return ""
}

// SameKey reports whether k is the partner's current key.
func (b *Book) SameKey(partner string, k []byte) bool {
	cur := b.PartnerKey(partner)
	return cur != nil && bytes.Equal(cur, k)
}
