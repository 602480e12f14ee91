package stack

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/witness"
)

// TestStackMirrorQuorum: as `minecart run` with a fixed --http-addr, the
// last embedded witness mirrors the book from the stack's own /ledger/;
// the policy the stack writes names the mirror key (m3, at its /ledger
// prefix) and requires it besides 2 of the 3 witnesses; the published
// checkpoint carries the mirror's cosignature (the mirror holds the book
// up to its size), verified against the written policy; and the
// publisher copied it to the partner topics (key, headers, value).
func TestStackMirrorQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const httpAddr = "127.0.0.1:21291" // this helper's port (a mirror needs a known address)
	ws := make([]WitnessConfig, 3)
	ws[2].Configure = func(c *witness.Config) { c.Mirror = "http://" + httpAddr + "/ledger" }
	st, err := Start(ctx, Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: httpAddr, SessionTimeout: time.Second,
		Logger: testLogger(t), Witnesses: ws})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	text, err := os.ReadFile(filepath.Join(dir, PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := ledger.ParsePolicy(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(policy.Witnesses) != 4 || !policy.Witnesses[3].Mirror || policy.Witnesses[3].Name != "m3" || !policy.Requires("m3") ||
		policy.QuorumText() != "all of (2 of (w1, w2, w3), any of (m3))" {
		t.Fatalf("written policy:\n%s", text)
	}
	if err := kafka.EnsureTopicsWith(ctx, st.Pipelines, settlement.PartnerTopics("acme")); err != nil {
		t.Fatal(err)
	}
	const n = 12
	for i := 0; i < n; i++ {
		adjust(t, ctx, st, fmt.Sprintf("m-%03d", i))
	}
	waitHead(t, ctx, st, n)
	cp, signers := waitCosigned(t, ctx, st, policy, n)
	if !slices.Contains(signers, "m3") {
		t.Fatalf("published without the mirror: %v", signers)
	}
	if got := st.Witnesses[2].Mirror().Size(); got < cp.Size {
		t.Fatalf("the mirror holds %d entries, the published checkpoint %d", got, cp.Size)
	}
	// The same note in the partner's topics.
	deadline := time.Now().Add(time.Minute)
	for {
		rd, err := kafka.NewReader(st.Pipelines)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, topic := range []string{pipelines.PartnerRedemptionsTopic("acme"), pipelines.PartnerCampaignsTopic("acme")} {
			if err := rd.ReadAll(ctx, topic, 0, func(rec pipelines.Record) error {
				size, ok := pipelines.ParsePartnerCheckpointKey(rec.Key)
				if !ok || size < n || len(rec.Headers) != 2 || rec.Headers[0].Key != pipelines.HeaderRecord {
					return nil
				}
				if _, s, err := policy.VerifyCosigned(string(rec.Value), st.LedgerKey.Public().(ed25519.PublicKey)); err == nil && slices.Contains(s, "m3") {
					found++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		rd.Close()
		if found >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cosigned checkpoint of size >= %d in acme's two topics (%d found)", n, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(text), "/ledger\n") {
		t.Fatal("no mirror URL in the policy")
	}
}
