package follow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/pseudonym"
)

// TestFollower on the real broker: Snapshot and a Follower see the keys
// the topic holds; a key written after the follower started is found by
// Open (which reads to the topic's end first); a tombstone makes Lookup
// and Open answer ErrUnknown; a record sealed under another key or
// garbage is skipped, not fatal.
func TestFollower(t *testing.T) {
	brokers := kafkatest.Broker(t)
	cfg := kafkatest.Config(brokers)
	cfg.Serde = schemas.SingleObject()
	seal, _ := pseudonym.GenerateSealKey()
	other, _ := pseudonym.GenerateSealKey()
	rec := func(k *pseudonym.SealKey, kind pseudonym.Kind, id string) (pseudonym.Opening, kafka.Output) {
		key := pseudonym.Random{}.NewKey(kind, id)
		o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, kind, id), Kind: kind, ID: id, Key: key}
		v, err := cfg.Serde.Marshal(k.Record(o, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return o, kafka.Output{Topic: Topic, Key: []byte(o.Pseudonym), Value: v}
	}
	a, ra := rec(seal, pseudonym.Vehicle, "veh-a")
	_, rx := rec(other, pseudonym.Vehicle, "veh-x")
	kafkatest.Produce(t, brokers, ra, rx, kafka.Output{Topic: Topic, Key: []byte("junk"), Value: []byte("not avro")})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap, err := Snapshot(ctx, cfg, seal, kafkatest.Logger())
	if err != nil || snap.Len() != 1 {
		t.Fatalf("snapshot: %d keys, %v; want 1", snap.Len(), err)
	}
	f, err := NewFollower(cfg, seal, kafkatest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	if o, err := f.Lookup(ctx, pseudonym.Vehicle, "veh-a"); err != nil || o.Pseudonym != a.Pseudonym {
		t.Fatalf("lookup veh-a: %+v %v", o, err)
	}
	b, rb := rec(seal, pseudonym.Account, "owner-1")
	kafkatest.Produce(t, brokers, rb)
	if o, err := f.Open(ctx, b.Pseudonym); err != nil || o.ID != "owner-1" || o.Kind != pseudonym.Account {
		t.Fatalf("open a key written after start: %+v %v", o, err)
	}
	kafkatest.Produce(t, brokers, kafka.Output{Topic: Topic, Key: []byte(a.Pseudonym)})
	if _, err := f.Lookup(ctx, pseudonym.Vehicle, "veh-a"); !errors.Is(err, pseudonym.ErrUnknown) {
		t.Fatalf("lookup after the tombstone: %v", err)
	}
	if _, err := f.Open(ctx, a.Pseudonym); !errors.Is(err, pseudonym.ErrUnknown) {
		t.Fatalf("open after the tombstone: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
