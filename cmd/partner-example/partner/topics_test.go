package partner_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/settlement"
)

// TestCheckpointsInPartnerTopics: the publisher's store
// (blocks.CheckpointStore, what `minecart run` and the ledger service
// use) writes each cosigned checkpoint to minecart.ledger.checkpoints and
// to every partner topic of the real broker, with the documented key,
// headers and value (which no Avro reader takes for one of its records);
// the partner example (kafka-go), reading only its orders topic, checks
// each against the policy and the last one it accepted: the honest ones
// are accepted and kept, a tampered cosignature, a split view at the
// same size, an older fork and a larger fork are refused, and the state
// file ends at the last honest checkpoint.
func TestCheckpointsInPartnerTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("broker")
	}
	q := newQuorumBook(t)
	var specs []pipelines.TopicSpec
	for _, p := range []string{"acme", "zeta"} {
		specs = append(specs, settlement.PartnerTopics(p)...)
	}
	brokers := kafkatest.Broker(t, specs...)
	cfg := kafkatest.Config(brokers)
	prod, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	store, err := blocks.NewCheckpointStore(cfg, prod, kafkatest.Logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cp10 := q.grow(q.book, 10, "v", true)
	q.grow(q.fork, 10, "v", false)
	cp30 := q.grow(q.book, 20, "v", true)
	fork30 := q.grow(q.fork, 20, "x", false)
	cp50 := q.grow(q.book, 20, "v", true)
	oldFork := q.grow(ledger.NewBook(), 10, "y", false)
	bigFork := q.grow(q.fork, 20, "x", false) // size 50, beyond the last accepted (30)
	tampered := tamperLast(t, q.cosign(cp50, 0, 1))
	steps := []struct {
		name string
		size uint64
		text string
		want error
	}{
		{"honest 10", 10, q.cosign(cp10, 0, 1), nil},
		{"honest 30", 30, q.cosign(cp30, 1, 2), nil},
		{"tampered cosignature", 50, tampered, ledger.ErrForgedCosignature},
		{"split view at 30", 30, q.cosign(fork30, 0, 1, 2), ledger.ErrNotConsistent},
		{"older fork", 10, q.cosign(oldFork, 0, 2), ledger.ErrNotConsistent},
		{"larger fork", 50, q.cosign(bigFork, 0, 1), ledger.ErrNotConsistent},
		{"honest 50", 50, q.cosign(cp50, 0, 2), nil},
	}
	for _, s := range steps {
		if err := store.Store(ctx, s.size, []byte(s.text)); err != nil {
			t.Fatal(err)
		}
	}

	// What a stock client sees in every partner topic.
	serde := schemas.SingleObject()
	for _, spec := range specs {
		recs, err := kafkatest.ReadCommitted(ctx, brokers, spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(steps) {
			t.Fatalf("%s: %d records, want %d", spec.Name, len(recs), len(steps))
		}
		for i, r := range recs {
			hs := map[string]string{}
			for _, h := range r.Headers {
				hs[h.Key] = string(h.Value)
			}
			wantKey := "checkpoint:" + strings.Repeat("0", 18) + []string{"10", "30", "50", "30", "10", "50", "50"}[i]
			if string(r.Key) != wantKey || hs["minecart-record"] != "ledger-checkpoint" || hs["minecart-tree-size"] != wantKey[len(wantKey)-2:] ||
				string(r.Value) != steps[i].text {
				t.Fatalf("%s record %d: key %q headers %v", spec.Name, i, r.Key, hs)
			}
			var o avro.Redemption
			if err := serde.Unmarshal(r.Value, &o); err == nil {
				t.Fatalf("%s record %d decodes as an order", spec.Name, i)
			}
		}
	}
	if recs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicLedgerCheckpoints); err != nil || len(recs) != len(steps) {
		t.Fatalf("checkpoints topic: %d records, %v", len(recs), err)
	}

	// The partner example reads its orders topic only.
	state := filepath.Join(t.TempDir(), "acme.checkpoint")
	var (
		mu   sync.Mutex
		seen []error
	)
	done := make(chan struct{})
	rctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- partner.Run(rctx, partner.Config{Brokers: brokers, Partner: "acme", LedgerKey: q.s.Public(), Logger: kafkatest.Logger(),
			Checkpoints: &partner.Checkpoints{Policy: q.p, LedgerKey: q.s.Public(), StatePath: state, Prove: partner.ConsistencyFrom(q.api.URL, nil)},
			OnCheckpoint: func(_ ledger.Checkpoint, _ []string, err error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, err)
				if len(seen) == len(steps) {
					close(done)
				}
			}})
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("the partner saw %d checkpoints of %d", len(seen), len(steps))
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if (s.want == nil) != (seen[i] == nil) || (s.want != nil && !errors.Is(seen[i], s.want)) {
			t.Errorf("%s: %v, want %v", s.name, seen[i], s.want)
		}
	}
	if b, _ := os.ReadFile(state); string(b) != steps[len(steps)-1].text {
		t.Fatalf("state file holds %q, want the honest checkpoint of size 50", b)
	}
}

// tamperLast flips one bit of the signature in the last signature line
// of a note (its key name and key id unchanged).
func tamperLast(t *testing.T, text string) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	last := lines[len(lines)-1]
	i := strings.LastIndex(last, " ")
	raw, err := base64.StdEncoding.DecodeString(last[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	lines[len(lines)-1] = last[:i+1] + base64.StdEncoding.EncodeToString(raw)
	return strings.Join(lines, "\n") + "\n"
}
