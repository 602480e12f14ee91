package stage

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// rescorePrefix starts the changelog key of a queued re-scored day:
// "rs/rescore/<score id>/<revision>".
const rescorePrefix = "rs/"

// lateScore is a DailyScore written after its day closed: revision >= 1
// of a day scoring emitted at its close (a rescore entry), or revision 0
// of a day whose every event arrived after the close (a credit).
type lateScore struct {
	key       string       // changelog key
	credit    ledger.Entry // the score as a credit entry
	rev       int64
	release   int64 // appended once every watermark reached it
	lateAdded int64
}

func newLateScore(s *avro.DailyScore) (*lateScore, error) {
	e, err := ledger.CreditFromScore(s)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Revision < 0:
		return nil, fmt.Errorf("score %q: revision %d: %w", s.ID, s.Revision, ledger.ErrEntry)
	case s.ReleaseMs < e.WindowEndMs:
		return nil, fmt.Errorf("score %q revision %d: release %d before its window end %d: %w", s.ID, s.Revision, s.ReleaseMs, e.WindowEndMs, ledger.ErrEntry)
	}
	return &lateScore{key: rescorePrefix + ledger.RescoreID(s.ID, int64(s.Revision)), credit: e, rev: int64(s.Revision),
		release: s.ReleaseMs, lateAdded: s.LateAdded}, nil
}

// lateOrder is the canonical order of re-scored days: release mark,
// vehicle, score id, revision.
func lateOrder(a, b *lateScore) int {
	return cmp.Or(cmp.Compare(a.release, b.release), cmp.Compare(a.credit.VehicleID, b.credit.VehicleID),
		cmp.Compare(a.credit.ID, b.credit.ID), cmp.Compare(a.rev, b.rev))
}

// lateDone: the book holds it already (a replayed or re-delivered score).
func (p *Processor) lateDone(ls *lateScore) bool {
	if ls.rev == 0 {
		_, ok := p.book.Credited(ls.credit.ID)
		return ok
	}
	return p.book.HasRequest(ledger.RescoreID(ls.credit.ID, ls.rev))
}

// revision queues a re-scored day (kept in the changelog until appended).
func (p *Processor) revision(s *avro.DailyScore, raw []byte, out pipelines.Emitter) error {
	ls, err := newLateScore(s)
	if err != nil {
		return pipelines.Reject("invalid_score", err)
	}
	if p.lateDone(ls) || p.lateQueued(ls.key) {
		p.m.dups.WithLabelValues(ledger.KindRescore.String()).Inc()
		return nil
	}
	if ls.release <= p.releasedThrough() { // the watermarks passed it already (not in scoring's order): due now
		p.lateDue = append(p.lateDue, ls)
		slices.SortFunc(p.lateDue, lateOrder)
	} else {
		p.lateScores[ls.key] = ls
	}
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(ls.key), raw)
	p.m.pending.Set(float64(p.Pending()))
	return nil
}

func (p *Processor) lateQueued(key string) bool {
	if _, ok := p.lateScores[key]; ok {
		return true
	}
	for _, q := range [][]*lateScore{p.lateDue, p.lateWait} {
		if slices.ContainsFunc(q, func(x *lateScore) bool { return x.key == key }) {
			return true
		}
	}
	return false
}

// releaseLate appends the due re-scored days of the first release mark:
// each revision >= 1 as a rescore entry linking to its credit's leaf, with
// delta = new points - the day's points in the book so far; a revision 0 as
// a credit. A revision whose credit is not in the book yet waits. It
// returns how many it took off the due list.
func (p *Processor) releaseLate(out pipelines.Emitter) (int, error) {
	r := p.lateDue[0].release
	j := 0
	for j < len(p.lateDue) && p.lateDue[j].release == r {
		j++
	}
	group := p.lateDue[:j]
	entries, done, wait := p.lateEntries(group)
	if len(entries) > 0 {
		if err := p.release(entries, r, out); err != nil {
			return 0, err
		}
	}
	for _, ls := range done {
		out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(ls.key), nil)
	}
	p.lateWait = append(p.lateWait, wait...)
	p.lateDue = slices.Delete(p.lateDue, 0, j)
	return j, nil
}

// retryWaiting appends the waiting revisions whose credit reached the book.
func (p *Processor) retryWaiting(out pipelines.Emitter) error {
	waiting := p.lateWait
	p.lateWait = nil
	slices.SortFunc(waiting, lateOrder)
	entries, done, wait := p.lateEntries(waiting)
	p.lateWait = wait
	if len(entries) > 0 {
		if err := p.release(entries, waiting[len(waiting)-1].release, out); err != nil {
			return err
		}
	}
	for _, ls := range done {
		out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(ls.key), nil)
	}
	return nil
}

// lateEntries makes the entries of re-scored days (in canonical order):
// done are the ones appended or found in the book, wait the ones whose
// credit is not in the book.
func (p *Processor) lateEntries(group []*lateScore) (entries []ledger.Entry, done, wait []*lateScore) {
	type day struct {
		points int64
		leaf   uint64
	}
	days := map[string]day{} // credits and rescores of this release
	for _, ls := range group {
		c := ls.credit
		if p.lateDone(ls) {
			p.m.dups.WithLabelValues(ledger.KindRescore.String()).Inc()
			done = append(done, ls)
			continue
		}
		if ls.rev == 0 {
			if _, ok := days[c.ID]; ok {
				done = append(done, ls) // the same day twice
				continue
			}
			days[c.ID] = day{c.Points, p.book.Size() + uint64(len(entries))}
			entries = append(entries, c)
			done = append(done, ls)
			continue
		}
		d, ok := days[c.ID]
		if !ok {
			d.points, ok = p.book.Credited(p.bookCreditID(c.ID)) // the book holds the pseudonymous id
			d.leaf, _ = p.book.CreditLeaf(p.bookCreditID(c.ID))
		}
		if !ok {
			wait = append(wait, ls)
			continue
		}
		delta := c.Points - d.points
		entries = append(entries, ledger.Entry{
			Kind: ledger.KindRescore, ID: ledger.RescoreID(c.ID, ls.rev), VehicleID: c.VehicleID, Ref: c.ID, RefLeaf: d.leaf,
			Revision: ls.rev, Points: c.Points, Amount: delta, EventsHash: c.EventsHash, ConfigVersion: c.ConfigVersion,
			Flags: c.Flags, Date: c.Date,
			Reason: fmt.Sprintf("late data: %d events of %s arrived after the day closed; re-scored to %d points (%+d), revision %d, rules %s",
				ls.lateAdded, c.Date, c.Points, delta, ls.rev, c.ConfigVersion),
		})
		days[c.ID] = day{c.Points, d.leaf}
		done = append(done, ls)
	}
	return entries, done, wait
}
