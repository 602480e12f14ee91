package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
)

// memState is a state reader whose values a test sets (no Wait: Submit
// polls it).
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memState) Get(k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *memState) set(t *testing.T, x settlement.Transfer) {
	v, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.m[settlement.TransferKey(x.ID)] = v
	s.mu.Unlock()
}

type memProducer struct {
	mu   sync.Mutex
	sent int
}

func (p *memProducer) ProduceSync(_ context.Context, topic string, _, _ []byte, _ ...pipelines.Header) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if topic != pipelines.TopicTransfers {
		return errors.New("wrong topic " + topic)
	}
	p.sent++
	return nil
}

// TestSubmitWaits (testing/synctest: virtual time, no wall-clock sleeps):
// Submit writes the batch once, returns when every transfer is final,
// returns what it has when the wait ends, never writes a batch whose ids
// are all decided, and refuses an id decided for another body without
// writing.
func TestSubmitWaits(t *testing.T) {
	spec := settlement.TransferSpec{ID: "0000000000000000000000000000e001", Debit: "alice", Credit: "bob", Amount: 3}
	b := settlement.TransferBatch{CallerRole: string(avro.RoleOwner), CallerID: "alice", Transfers: []settlement.TransferSpec{spec}}
	serde := schemas.SingleObject()
	decided := settlement.Transfer{ID: spec.ID, Debit: "alice", Credit: "bob", Amount: 3, Digest: spec.Digest(b.CallerRole, b.CallerID)}

	synctest.Test(t, func(t *testing.T) {
		st, p := &memState{m: map[string][]byte{}}, &memProducer{}
		go func() {
			time.Sleep(300 * time.Millisecond)
			x := decided
			x.Status = settlement.TransferAccepted
			st.set(t, x)
			time.Sleep(time.Second)
			x.Status = settlement.TransferCommitted
			st.set(t, x)
		}()
		start := time.Now()
		res, err := api.Submit(t.Context(), p, serde, st, b, 5*time.Second, 10*time.Millisecond)
		if err != nil || res[0].Status != settlement.TransferCommitted || p.sent != 1 {
			t.Fatalf("%+v %v, sent %d", res, err, p.sent)
		}
		if d := time.Since(start); d < 1300*time.Millisecond || d > 1400*time.Millisecond {
			t.Errorf("returned after %v, want ~1.3s (when the entry came)", d)
		}
		// All decided: nothing written.
		if _, err := api.Submit(t.Context(), p, serde, st, b, 5*time.Second, 10*time.Millisecond); err != nil || p.sent != 1 {
			t.Fatalf("replay: %v, sent %d", err, p.sent)
		}
		// Another body: ErrConflict, nothing written.
		other := b
		other.Transfers = []settlement.TransferSpec{{ID: spec.ID, Debit: "alice", Credit: "bob", Amount: 4}}
		if _, err := api.Submit(t.Context(), p, serde, st, other, 5*time.Second, 10*time.Millisecond); !errors.Is(err, api.ErrConflict) || p.sent != 1 {
			t.Fatalf("other body: %v, sent %d", err, p.sent)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		st, p := &memState{m: map[string][]byte{}}, &memProducer{}
		start := time.Now()
		res, err := api.Submit(t.Context(), p, serde, st, b, 2*time.Second, 10*time.Millisecond)
		if err != nil || res[0].Status != "" || p.sent != 1 {
			t.Fatalf("undecided: %+v %v", res, err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("gave up after %v, want the 2s wait", d)
		}
	})
}
