package stage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

var (
	partnerPub, partnerKey, _ = ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 64)))
	_, forgerKey, _           = ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{4}, 64)))
	region                    = campaign.Definition{Partner: "acme", Name: "region", Rule: `region == "N31E121" ? points : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 250, Cap: 100}
	newcomer = campaign.Definition{Partner: "acme", Name: "newcomer", Rule: `tenure_days == 0 ? 5 : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 1000, Cap: 5}
)

// campaignRun drives a processor as plain code over a memLog, crashing
// (a new processor from the published blocks and the changelog) where
// asked.
type campaignRun struct {
	t          *testing.T
	m          *memLog
	p          *Processor
	out        collect
	maxRelease int
}

func newCampaignRun(t *testing.T, maxRelease int) *campaignRun {
	r := &campaignRun{t: t, m: &memLog{changelog: map[string][]byte{}}, maxRelease: maxRelease}
	r.restart()
	return r
}

func (r *campaignRun) restart() {
	cfg := Config{Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: 2, MaxReleaseEntries: r.maxRelease,
		Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(r.m.blocks), Logger: kafkatest.Logger(),
		Now: func() time.Time { return time.UnixMilli(1_000) }}
	p, err := NewProcessor(context.Background(), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range r.m.changelog {
		if err := p.Restore(context.Background(), pipelines.Record{Topic: pipelines.TopicLedgerChangelog, Key: []byte(k), Value: v}); err != nil {
			r.t.Fatal(err)
		}
	}
	r.p = p
}

// send processes one record and flushes (a committed transaction); a
// processing error is returned with nothing taken.
func (r *campaignRun) send(topic string, rec schemas.Record) error {
	ctx := context.Background()
	err := r.p.Process(ctx, pipelines.Record{Topic: topic, Value: enc(r.t, rec)}, &r.out)
	if err == nil {
		err = r.p.Flush(ctx, &r.out)
	}
	r.m.take(r.t, &r.out)
	return err
}

func (r *campaignRun) must(topic string, rec schemas.Record) {
	r.t.Helper()
	if err := r.send(topic, rec); err != nil {
		r.t.Fatal(err)
	}
}

// day sends the scores of vehicles for day d and both watermarks past it,
// crashing after the first transaction if crash.
func (r *campaignRun) day(d int, crash bool) {
	for i, v := range []string{"a", "b", "c", "d", "e"} {
		s := ledgertest.Score(v, d, 60)
		if i < 4 {
			s.Region = "N31E121"
		}
		r.must(pipelines.TopicScores, s)
	}
	r.must(pipelines.TopicScores, ledgertest.Watermark(0, 2, int64(d+1)*ledgertest.DayMs))
	r.must(pipelines.TopicScores, ledgertest.Watermark(1, 2, int64(d+1)*ledgertest.DayMs))
	if crash {
		r.restart()
	}
	for range 10 { // drain what a small MaxReleaseEntries left
		if err := r.p.Flush(context.Background(), &r.out); err != nil {
			r.t.Fatal(err)
		}
		r.m.take(r.t, &r.out)
	}
}

func (r *campaignRun) setup() {
	r.t.Helper()
	key := campaign.RegisterKey("acme", partnerPub, 1)
	r.must(pipelines.TopicLedgerRequests, campaign.Request(&key))
	for _, d := range []campaign.Definition{region, newcomer} {
		e := campaign.Submit(d, partnerKey, 2)
		r.must(pipelines.TopicLedgerRequests, campaign.Request(&e))
	}
}

func (r *campaignRun) bonuses() (n int, paid map[string]int64) {
	paid = map[string]int64{}
	for _, b := range r.m.blocks {
		for _, raw := range b.Entries {
			e, _ := ledger.DecodeEntry(raw)
			if e.Kind == ledger.KindBonus {
				n++
				paid[e.Campaign] += e.Amount
			}
		}
	}
	return n, paid
}

// TestProcessorCampaigns: a partner's key and two signed campaigns in the
// book; bonuses on two days of five vehicles, the region campaign's
// budget (250) running out on day 2 with a cut bonus; refused requests;
// a crash in the middle of a day's credits pays no bonus twice and gives
// the same book as a run without it; the audit recomputes every bonus.
func TestProcessorCampaigns(t *testing.T) {
	a := newCampaignRun(t, 0)
	a.setup()
	a.day(1, false)
	n, paid := a.bonuses()
	if n != 9 || paid["acme/region"] != 240 || paid["acme/newcomer"] != 25 {
		t.Fatalf("day 1: %d bonuses, paid %v; want 9, region 240, newcomer 25", n, paid)
	}
	a.day(2, false)
	n, paid = a.bonuses()
	if n != 10 || paid["acme/region"] != 250 || paid["acme/newcomer"] != 25 {
		t.Fatalf("day 2: %d bonuses, paid %v; want 10, region 250 (budget), newcomer 25 (tenure 1)", n, paid)
	}
	ci, _ := a.p.Book().Campaign("acme/region")
	if ci.Spent != 250 || ci.Bonuses != 5 {
		t.Errorf("book: region spent %d in %d bonuses", ci.Spent, ci.Bonuses)
	}

	// Refused: a forged submit, a pause by the forger, a second submit, a
	// pause of an unknown campaign, a rule that does not check.
	forged := campaign.Submit(campaign.Definition{Partner: "acme", Name: "forged", Rule: "100", Start: "1970-01-01", End: "1970-01-31", Budget: 100, Cap: 100}, forgerKey, 3)
	h := region.RuleHash()
	badPause := campaign.Act(ledger.ActionPause, "acme", "acme/region", h[:], "x", forgerKey, 3)
	again := campaign.Submit(region, partnerKey, 3)
	again.ID = "submit/acme/region"
	bad := campaign.Submit(campaign.Definition{Partner: "acme", Name: "bad", Rule: "points * 1.5", Start: "1970-01-01", End: "1970-01-31", Budget: 100, Cap: 100}, partnerKey, 3)
	for name, e := range map[string]ledger.Entry{"forged": forged, "forged pause": badPause, "bad rule": bad} {
		var rej *pipelines.RejectError
		if err := a.send(pipelines.TopicLedgerRequests, campaign.Request(&e)); !errors.As(err, &rej) {
			t.Errorf("%s: %v, want a rejection", name, err)
		}
	}
	size := a.p.Book().Size()
	a.must(pipelines.TopicLedgerRequests, campaign.Request(&again)) // idempotent: the same request id
	if a.p.Book().Size() != size {
		t.Error("a submit appended twice")
	}
	// Pause, then a day pays nothing of newcomer... (tenure 0 needs a new vehicle: f)
	pause := campaign.Act(ledger.ActionPause, "acme", "acme/newcomer", hash(newcomer), "n1", partnerKey, 4)
	a.must(pipelines.TopicLedgerRequests, campaign.Request(&pause))
	if ci, _ := a.p.Book().Campaign("acme/newcomer"); ci.Status != ledger.StatusPaused {
		t.Errorf("newcomer %s after pause", ci.Status)
	}
	rep, err := campaign.Audit(context.Background(), ledgertest.Blocks(a.m.blocks), ledgertest.Key(1).Public().(ed25519.PublicKey))
	if err != nil || rep.Bonuses != 10 || rep.Paid != 275 || rep.Campaigns != 2 {
		t.Fatalf("audit: %+v, %v", rep, err)
	}

	// The same days with a crash in the middle of each day's credits (one
	// block per transaction): the same book, no bonus twice.
	b := newCampaignRun(t, 2)
	b.setup()
	b.day(1, true)
	b.day(2, true)
	if got, want := b.p.Book().Head().Root, a.m.blocks[len(b.m.blocks)-1].Header.Root; got != want {
		t.Errorf("root with crashes %s, without %s", got, want)
	}
	if n, paid := b.bonuses(); n != 10 || paid["acme/region"] != 250 {
		t.Errorf("with crashes: %d bonuses, %v", n, paid)
	}
	if _, err := campaign.Audit(context.Background(), ledgertest.Blocks(b.m.blocks), ledgertest.Key(1).Public().(ed25519.PublicKey)); err != nil {
		t.Error(err)
	}
}

func hash(d campaign.Definition) []byte {
	h := d.RuleHash()
	return h[:]
}
