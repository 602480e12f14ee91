package partner_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// TestPartnerExampleBonus runs a campaign through the real ledger and
// settlement stages: settlement creates the partner's campaigns topic
// (only its redemptions topic exists beforehand) and writes the bonus
// there, kind bonus, not on the settled-credits topic; the kafka-go
// partner reads it and verifies it (proof, checkpoint, campaign, rule
// hash, and the rule recomputed on the entry's inputs). A record whose
// points or campaign differ does not verify.
func TestPartnerExampleBonus(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	brokers := kafkatest.Broker(t, settlement.PartnerTopics("acme")[0])
	env := settletest.StartOn(t, brokers, settletest.Options{})
	pub, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	half := campaign.Definition{Partner: "acme", Name: "half", Title: "half again", Rule: `points >= 50 ? points / 2 : 0`,
		Start: "2026-11-01", End: "2026-11-30", Budget: 1000, Cap: 100}
	key, submit := campaign.RegisterKey("acme", pub, 1), campaign.Submit(half, priv, 2)
	var outs []kafka.Output
	for _, e := range []*ledger.Entry{&key, &submit} {
		v, err := env.Serde.Marshal(campaign.Request(e))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(e.Campaign), Value: v})
	}
	kafkatest.Produce(t, brokers, outs...)
	waitEntries(t, env, 2) // the campaign before the credits
	env.Bind("v1", "o1")
	env.Bind("v2", "o2")
	env.Credit("v1", "2026-11-10", 100) // bonus 50
	env.Credit("v2", "2026-11-11", 40)  // none
	env.WaitBalance("o1", 150)
	env.WaitBalance("o2", 40)

	var (
		mu              sync.Mutex
		bonuses, credit []avro.CreditSettled
		errs            []error
	)
	collect := func(to *[]avro.CreditSettled) func(avro.CreditSettled, error) {
		return func(c avro.CreditSettled, err error) {
			mu.Lock()
			defer mu.Unlock()
			*to = append(*to, c)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- partner.Run(ctx, partner.Config{Brokers: brokers, Partner: "acme", LedgerKey: env.LedgerPub, Credits: true,
			Campaigns: []campaign.Definition{half}, OnBonus: collect(&bonuses), OnCredit: collect(&credit), Logger: kafkatest.Logger()})
	}()
	env.Wait(60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bonuses) >= 1 && len(credit) >= 2 },
		func() string { return "the bonus or the credits did not reach the partner" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	b := bonuses[0]
	if len(bonuses) != 1 || b.Kind != "bonus" || b.Points != 50 || b.Account != "" || b.VehicleID == "" || b.Day != "2026-11-10" ||
		!strings.HasPrefix(b.ScoreID, "bonus/acme/half/") {
		t.Errorf("bonuses %+v", bonuses)
	}
	for _, c := range credit {
		if c.Kind != "credit" || strings.HasPrefix(c.ScoreID, "bonus/") {
			t.Errorf("on the credits topic: %s %s", c.Kind, c.ScoreID)
		}
	}
	// Tampered records and another campaign's rules do not verify.
	r, err := campaign.Compile(half)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]*campaign.Rule{half.ID(): r}
	if err := partner.VerifyBonus(b, env.LedgerPub, rules); err != nil {
		t.Fatalf("real bonus: %v", err)
	}
	other := half
	other.Cap = 20 // a different definition: another rule hash
	ro, err := campaign.Compile(other)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		c     avro.CreditSettled
		rules map[string]*campaign.Rule
	}{
		"points":     {func() avro.CreditSettled { c := b; c.Points = 49; return c }(), rules},
		"kind":       {func() avro.CreditSettled { c := b; c.Kind = "credit"; return c }(), rules},
		"vehicle":    {func() avro.CreditSettled { c := b; c.VehicleID = "v2"; return c }(), rules},
		"other rule": {b, map[string]*campaign.Rule{half.ID(): ro}},
		"no rule":    {b, nil},
		"a credit":   {credit[0], rules},
	} {
		if err := partner.VerifyBonus(tc.c, env.LedgerPub, tc.rules); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// waitEntries waits until the ledger's blocks topic holds n entries.
func waitEntries(t *testing.T, env *settletest.Env, n uint64) {
	t.Helper()
	src, err := blocks.New(blocks.Config{Kafka: env.Cfg})
	if err != nil {
		t.Fatal(err)
	}
	env.Wait(60*time.Second, func() bool {
		sum, err := ledger.Verify(context.Background(), src, env.LedgerPub)
		return err == nil && sum.Entries >= n
	}, func() string { return "the campaign is not in the book" })
}
