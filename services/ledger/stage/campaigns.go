package stage

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
)

// Campaigns (docs/campaigns.md). A credit's bonuses are computed when the
// credit is appended (its candidates, kept in the changelog under
// "bonus/<bonus id>" with the canonical bonus entry as value, amount =
// requested), and appended once no credit of the same window end is due
// any more: after the last credit of the window end's group, or after the
// late credits of one window end, in a release of their own, in the fixed
// order of campaign.Allocate, each paying what its campaign has left.

const bonusPrefix = "bonus/"

// restoreBonus restores one candidate from the changelog.
func (p *Processor) restoreBonus(id string, value []byte) error {
	if len(value) == 0 {
		delete(p.cands, id)
		return nil
	}
	e, err := ledger.DecodeEntry(value)
	if err != nil || e.Kind != ledger.KindBonus || e.ID != id {
		return fmt.Errorf("changelog %s%s: not its bonus entry: %v", bonusPrefix, id, err)
	}
	if !p.book.HasRequest(e.ID) {
		p.cands[e.ID] = e
	}
	return nil
}

// rule is the compiled rule of a campaign of the book (nil if none).
func (p *Processor) rule(id string) *campaign.Rule {
	if r, ok := p.rules[id]; ok {
		return r
	}
	ci, ok := p.book.Campaign(id)
	if !ok {
		return nil
	}
	d, err := campaign.ParseDefinition(ci.Definition)
	var r *campaign.Rule
	if err == nil {
		r, err = campaign.Compile(d)
	}
	if err != nil { // the book holds only definitions that compiled: a newer engine refuses it
		p.cfg.Logger.Error("campaign rule does not compile: it pays nothing", "campaign", id, "err", err)
		r = nil
	}
	p.rules[id] = r
	return r
}

// candidates computes, for credits just appended, the bonus each active
// campaign asks for and queues them (in memory and in the changelog).
// entries are the release as passed to the book: the appended credits are
// matched to them (and so to their scores) by position, window end and
// events hash, not by id, so that an entry rewritten on its way into the
// book (identities pseudonymized) still finds its score.
func (p *Processor) candidates(entries []ledger.Entry, appended []ledger.Appended, out pipelines.Emitter) {
	defer func() {
		for i := range entries {
			if entries[i].Kind == ledger.KindCredit {
				delete(p.scores, entries[i].ID)
			}
		}
	}()
	var active []*campaign.Rule
	for _, ci := range p.book.Campaigns() {
		if ci.Status == ledger.StatusActive {
			if r := p.rule(ci.ID); r != nil && ci.Spent < r.Def.Budget {
				active = append(active, r)
			}
		}
	}
	if len(active) == 0 {
		return
	}
	j := 0
	for i := range appended {
		a := &appended[i]
		if a.Entry.Kind != ledger.KindCredit {
			continue
		}
		for j < len(entries) && (entries[j].Kind != ledger.KindCredit || entries[j].WindowEndMs != a.Entry.WindowEndMs ||
			!bytes.Equal(entries[j].EventsHash, a.Entry.EventsHash)) {
			j++
		}
		if j == len(entries) {
			return
		}
		s, ok := p.scores[entries[j].ID]
		j++
		if !ok {
			continue
		}
		in, err := campaign.FromScore(s, p.book.FirstCreditDate(a.Entry.VehicleID))
		if err != nil {
			p.m.bonusErrs.WithLabelValues("inputs").Inc()
			continue
		}
		for _, r := range active {
			c, ok, err := r.Candidate(a.Entry, a.LeafIndex, a.Raw, &in)
			if err != nil {
				p.m.bonusErrs.WithLabelValues("eval").Inc()
				p.cfg.Logger.Warn("campaign rule failed on a credit: no bonus", "campaign", r.Def.ID(), "leaf", a.LeafIndex, "err", err)
			}
			if !ok {
				continue
			}
			raw, err := c.Encode()
			if err != nil {
				p.m.bonusErrs.WithLabelValues("encode").Inc()
				continue
			}
			p.cands[c.ID] = c
			out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(bonusPrefix+c.ID), raw)
		}
	}
}

// payBonuses appends the queued candidates of every window end no due
// credit has any more, window end by window end.
func (p *Processor) payBonuses(out pipelines.Emitter) error {
	if len(p.cands) == 0 {
		return nil
	}
	byEnd := make(map[int64][]ledger.Entry)
	for _, c := range p.cands {
		byEnd[c.WindowEndMs] = append(byEnd[c.WindowEndMs], c)
	}
	for _, end := range slices.Sorted(maps.Keys(byEnd)) {
		if p.dueHead < len(p.due) && p.due[p.dueHead].WindowEndMs <= end {
			break // credits of this window end are still to come
		}
		cands := byEnd[end]
		bonuses := campaign.Allocate(cands, func(id string) int64 { return campaign.Left(p.book, p.rule, id) })
		if len(bonuses) > 0 {
			if err := p.release(bonuses, end, out); err != nil {
				return err
			}
		}
		for _, c := range cands {
			delete(p.cands, c.ID)
			out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(bonusPrefix+c.ID), nil)
		}
		p.m.bonuses.Add(float64(len(bonuses)))
	}
	return nil
}

// campaignRequest appends one campaign action, after the debits queued
// before it (so the book keeps the requests' order), if the book's state
// admits it.
func (p *Processor) campaignRequest(r *avro.CampaignRequest, out pipelines.Emitter) error {
	e := campaign.FromRequest(r)
	if _, queued := p.debitIDs[e.ID]; queued || p.book.HasRequest(e.ID) {
		p.m.dups.WithLabelValues(e.Kind.String()).Inc()
		return nil
	}
	if err := p.appendDebits(out); err != nil {
		return err
	}
	rule, err := campaign.CheckAction(p.book, &e)
	if err != nil {
		reason := "campaign_refused"
		if errors.Is(err, campaign.ErrSignature) {
			reason = "campaign_signature"
		}
		return pipelines.Reject(reason, err)
	}
	if err := p.appendAndEmit(ledger.Release{Entries: []ledger.Entry{e}, TimestampMs: p.cfg.Now().UnixMilli(), Clock: ledger.ClockWall}, out); err != nil {
		return err
	}
	if rule != nil {
		p.rules[e.Campaign] = rule
	}
	return nil
}
