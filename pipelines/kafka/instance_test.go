package kafka_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// TestInstanceIDCollision: two live instances of a stage started with the
// same InstanceID (a misconfiguration: static membership and the
// transactional id both take it) do not fence each other forever: the
// broker fences one from the group and its Run stops with an error that
// names the shared instance id; the other goes on.
func TestInstanceIDCollision(t *testing.T) {
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "dup.in", Partitions: 2},
		pipelines.TopicSpec{Name: "dup.out", Partitions: 2})
	var count atomic.Int64
	st := pipelines.Stage{
		Name:   "dup",
		Inputs: []string{"dup.in"},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return &upper{out: "dup.out", count: &count}, nil
		},
	}
	cfg := kafkatest.Config(brokers)
	cfg.InstanceID = "replica-0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 2)
	run := func() { errs <- kafka.Run(ctx, cfg, st) }
	go run()
	kafkatest.ProduceN(t, brokers, "dup.in", 100, gen)
	kafkatest.WaitRecords(t, brokers, "dup.out", 100, 30*time.Second)
	go run()
	kafkatest.ProduceN(t, brokers, "dup.in", 100, gen)
	select {
	case err := <-errs:
		if err == nil || !strings.Contains(err.Error(), `instance id "replica-0" is in use by another live process`) {
			t.Fatalf("Run returned %v, want the collision refused", err)
		}
		t.Logf("refused: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no instance stopped within 60s of sharing an instance id")
	}
	// The survivor processes the rest.
	kafkatest.WaitRecords(t, brokers, "dup.out", 200, 30*time.Second)
	cancel()
	if err := <-errs; err != nil {
		t.Fatalf("the other instance: %v", err)
	}
}
