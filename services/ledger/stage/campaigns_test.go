package stage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
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
	for name, tc := range map[string]struct {
		e    ledger.Entry
		code string
	}{"forged": {forged, "campaign_signature"}, "forged pause": {badPause, "campaign_signature"}, "bad rule": {bad, "campaign_refused"}} {
		err := a.send(pipelines.TopicLedgerRequests, campaign.Request(&tc.e))
		if code, ok := pipelines.RejectCode(err); !ok || code != tc.code {
			t.Errorf("%s: %v, want a rejection %s", name, err, tc.code)
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

// TestStageCampaignsAcrossCrashes runs campaigns on the real broker twice
// — uninterrupted, and with a crash injected every third transaction while
// days drain over several transactions — and requires the same head from
// both, a budget spent exactly (the last bonus cut), and an audit that
// recomputes every bonus.
func TestStageCampaignsAcrossCrashes(t *testing.T) {
	const vehicles, days, perBlock = 40, 4, 16
	key := campaign.RegisterKey("acme", partnerPub, 1)
	spend := campaign.Definition{Partner: "acme", Name: "spend", Rule: `points >= 13 ? points : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 700, Cap: 20}
	reqs := []ledger.Entry{key, campaign.Submit(spend, partnerKey, 2), campaign.Submit(newcomer, partnerKey, 3)}
	var recs []kafka.Output
	for i := range reqs {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(reqs[i].Campaign), Value: enc(t, campaign.Request(&reqs[i]))})
	}
	stream := scoreStream(t, vehicles, days, 3)
	pub := ledgertest.Key(1).Public().(ed25519.PublicKey)
	run := func(t *testing.T, crash bool) (ledger.Summary, campaign.Report) {
		brokers := kafkatest.Broker(t)
		cfg := stageConfig(t, brokers, perBlock)
		cfg.Now = func() time.Time { return time.UnixMilli(1_000) }
		cfg.MaxReleaseEntries = 2 * perBlock
		st := newStage(t, cfg)
		var batches atomic.Int64
		if crash {
			inner := st.NewProcessor
			st.NewProcessor = func(ctx context.Context, task pipelines.Task) (pipelines.Processor, error) {
				p, err := inner(ctx, task)
				if err != nil {
					return nil, err
				}
				return crashy{Processor: p.(*Processor), batches: &batches, every: 3}, nil
			}
		}
		stop := kafkatest.Run(t, runConfig(brokers, 11), st)
		defer stop()
		kafkatest.Produce(t, brokers, recs...)
		waitBook(t, brokers, pub, 3) // the campaigns first: credits before them get no bonus
		kafkatest.Produce(t, brokers, stream...)
		// vehicles x days credits, 40 newcomer bonuses (day 1), and the
		// spend campaign's until its budget is out.
		src := blocksOn(t, brokers)
		deadline := time.Now().Add(60 * time.Second)
		for {
			rep, err := campaign.Audit(context.Background(), src, pub)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := ledger.Verify(context.Background(), src, pub)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Credits == vehicles*days && rep.Spent["acme/spend"] == spend.Budget && rep.Spent["acme/newcomer"] == vehicles*5 {
				if crash && batches.Load() < 6 {
					t.Errorf("only %d batches: the crash injection did not run", batches.Load())
				}
				return sum, rep
			}
			if time.Now().After(deadline) {
				t.Fatalf("book: %d credits, campaigns %v", sum.Credits, rep.Spent)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var heads []ledger.Header
	var reps []campaign.Report
	for _, crash := range []bool{false, true} {
		sum, rep := run(t, crash)
		heads = append(heads, sum.Head)
		reps = append(reps, rep)
	}
	if heads[0].Hash() != heads[1].Hash() {
		t.Errorf("head with crashes %d %s, without %d %s", heads[1].TreeSize, heads[1].Root, heads[0].TreeSize, heads[0].Root)
	}
	if reps[0].Bonuses != reps[1].Bonuses || reps[0].Paid != 700+vehicles*5 {
		t.Errorf("bonuses %d and %d, paid %d", reps[0].Bonuses, reps[1].Bonuses, reps[0].Paid)
	}
	t.Logf("%d bonuses, %d points paid, head %d %s", reps[0].Bonuses, reps[0].Paid, heads[0].TreeSize, heads[0].Root)
}

// TestAuditSkippedBonus: the audit recomputes, from the book alone, which
// credits a campaign had to pay. A book from which one bonus is removed
// and which is re-signed with the ledger's own key (so every block, root
// and signature verifies, and every bonus left is right) is refused with
// ErrSkipped; the untampered book passes, with the bonuses the book
// cannot decide (region is not in a credit) counted as undecided.
func TestAuditSkippedBonus(t *testing.T) {
	a := newCampaignRun(t, 0)
	a.setup()
	a.day(1, false)
	a.day(2, false)
	pub := ledgertest.Key(1).Public().(ed25519.PublicKey)
	rep, err := campaign.Audit(context.Background(), ledgertest.Blocks(a.m.blocks), pub)
	// newcomer (tenure_days == 0 ? 5 : 0) is decided by the credit: 5
	// eligible on day 1, 0 on day 2; region needs the score's region.
	if err != nil || rep.Eligible != 5 || rep.Undecided != 10 || rep.Pending != 0 {
		t.Fatalf("untampered: %+v, %v", rep, err)
	}

	// Re-sign the book without one newcomer bonus (the third of day 1's).
	signer, err := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, skip := range []int{0, 2, 4} {
		book := ledger.NewBook()
		var tampered []*ledger.Block
		seen, removed := 0, ""
		for _, b := range a.m.blocks {
			var rel ledger.Release
			rel.TimestampMs, rel.Clock = b.Header.TimestampMs, b.Header.Clock
			for _, raw := range b.Entries {
				e, err := ledger.DecodeEntry(raw)
				if err != nil {
					t.Fatal(err)
				}
				if e.Kind == ledger.KindBonus && e.Campaign == "acme/newcomer" {
					if seen == skip {
						seen++
						removed = e.ID
						continue
					}
					seen++
				}
				rel.Entries = append(rel.Entries, e)
			}
			if len(rel.Entries) == 0 {
				continue
			}
			blocks, _, _, err := book.Append(rel, 1000, signer)
			if err != nil {
				t.Fatal(err)
			}
			tampered = append(tampered, blocks...)
		}
		if removed == "" {
			t.Fatal("no newcomer bonus to remove")
		}
		if _, err := ledger.Verify(context.Background(), ledgertest.Blocks(tampered), pub); err != nil {
			t.Fatalf("the re-signed book does not verify: %v", err)
		}
		rep, err := campaign.Audit(context.Background(), ledgertest.Blocks(tampered), pub)
		if !errors.Is(err, campaign.ErrSkipped) || !strings.Contains(err.Error(), removed) {
			t.Errorf("without %s: %+v, %v; want ErrSkipped naming it", removed, rep, err)
		}
	}
}

// TestStageRescoreKeepsBonuses, on the real broker: campaign rules
// evaluate a day's first credit only (docs/campaigns.md, "Late
// re-scoring"). A rescore (kind 4) that lowers a paid day below the rule's
// threshold takes no bonus back, one that raises an unpaid day above it
// pays none, and a day credited whole after its close (revision 0) is
// evaluated like any credit; the audit, recomputing eligibility from the
// book, accepts the result and finds nothing skipped.
func TestStageRescoreKeepsBonuses(t *testing.T) {
	const quarter int64 = 15 * 60 * 1000
	key := campaign.RegisterKey("acme", partnerPub, 1)
	hundred := campaign.Definition{Partner: "acme", Name: "hundred", Rule: `points >= 100 ? points : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 10_000, Cap: 500}
	reqs := []ledger.Entry{key, campaign.Submit(hundred, partnerKey, 2), campaign.Submit(newcomer, partnerKey, 3)}
	var recs []kafka.Output
	for i := range reqs {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(reqs[i].Campaign), Value: enc(t, campaign.Request(&reqs[i]))})
	}
	score := func(v string, pts int64, rev int32, release int64) kafka.Output {
		s := ledgertest.Score(v, 1, pts)
		if rev > 0 || release > 0 {
			s.Revision, s.ReleaseMs, s.LateAdded = rev, release, 3
			s.EventsHash = append([]byte{byte(rev + 1)}, s.EventsHash[1:]...)
		}
		return kafka.Output{Topic: pipelines.TopicScores, Key: []byte(v), Value: enc(t, s)}
	}
	wm := func(through int64) []kafka.Output {
		var out []kafka.Output
		for task := range 2 {
			out = append(out, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(fmt.Sprintf("wm/%d", task)), Value: enc(t, ledgertest.Watermark(task, 2, through))})
		}
		return out
	}
	brokers := kafkatest.Broker(t)
	cfg := stageConfig(t, brokers, 4)
	cfg.Now = func() time.Time { return time.UnixMilli(1_000) }
	stop := kafkatest.Run(t, runConfig(brokers, 11), newStage(t, cfg))
	defer stop()
	pub := ledgertest.Key(1).Public().(ed25519.PublicKey)
	kafkatest.Produce(t, brokers, recs...)
	waitBook(t, brokers, pub, 3)
	// Day 1: a 100 points (hundred pays 100), b 50 (nothing); both new (newcomer 5 each).
	kafkatest.Produce(t, brokers, append([]kafka.Output{score("a", 100, 0, 0), score("b", 50, 0, 0)}, wm(2*ledgertest.DayMs)...)...)
	waitBook(t, brokers, pub, 3+2+3)
	// Late data: a re-scored down to 40, b up to 150, c's whole day late at 120.
	r1 := 2*ledgertest.DayMs + 3*quarter
	kafkatest.Produce(t, brokers, append([]kafka.Output{score("a", 40, 1, r1), score("b", 150, 1, r1), score("c", 120, 0, r1)}, wm(r1)...)...)
	waitBook(t, brokers, pub, 3+2+3+3+2)

	var kinds []string
	paid := map[string]int64{}
	for _, b := range readBlocks(t, brokers, pub) {
		for _, raw := range b.Entries {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, e.Kind.String())
			if e.Kind == ledger.KindBonus {
				paid[e.Campaign+" "+e.VehicleID] += e.Amount
			}
		}
	}
	want := map[string]int64{"acme/hundred a": 100, "acme/newcomer a": 5, "acme/newcomer b": 5, "acme/hundred c": 120, "acme/newcomer c": 5}
	if fmt.Sprint(paid) != fmt.Sprint(want) {
		t.Errorf("bonuses %v, want %v (entries %v)", paid, want, kinds)
	}
	rep, err := campaign.Audit(context.Background(), blocksOn(t, brokers), pub)
	if err != nil || rep.Bonuses != 5 || rep.Eligible != 5 || rep.Undecided != 0 || rep.Pending != 0 || rep.Paid != 235 {
		t.Errorf("audit %+v, %v", rep, err)
	}
}

// readBlocks reads every block of the blocks topic.
func readBlocks(t *testing.T, brokers []string, pub []byte) []*ledger.Block {
	t.Helper()
	var out []*ledger.Block
	err := blocksOn(t, brokers).Blocks(context.Background(), func(r ledger.Record) error {
		out = append(out, r.Block)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
