package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

const (
	crashEnv   = "PIPELINES_CRASH_CHILD_BROKERS"
	crashIDEnv = "PIPELINES_CRASH_CHILD_INSTANCE"
)

// TestCrashChild is the stage process that TestExactlyOnceKill kills; it
// does nothing unless started by that test.
func TestCrashChild(t *testing.T) {
	brokers := os.Getenv(crashEnv)
	if brokers == "" {
		t.Skip("helper process of TestExactlyOnceKill")
	}
	cfg := kafkatest.Config(strings.Split(brokers, ","))
	cfg.MaxBatch = 100
	cfg.TransactionTimeout = 2 * time.Second
	if id := os.Getenv(crashIDEnv); id != "" {
		// Restarted under the same id: the successor fences us, no
		// need for a short timeout.
		cfg.InstanceID = id
		cfg.TransactionTimeout = 5 * time.Minute
	}
	var count, inBatch atomic.Int64
	st := pipelines.Stage{
		Name:   "crash",
		Inputs: []string{"crash.in"},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return &batchCounter{inBatch: &inBatch, upper: upper{out: "crash.out", count: &count, hook: func(pipelines.Record) error {
				if count.Load() >= 750 && inBatch.Add(1) > 20 {
					// Mid-batch, with this transaction's first records
					// sent: tell the parent to kill us; never commit.
					time.Sleep(100 * time.Millisecond)
					fmt.Println("HANG")
					select {}
				}
				return nil
			}}}, nil
		},
	}
	_ = kafka.Run(context.Background(), cfg, st)
}

// batchCounter resets inBatch at the end of every batch.
type batchCounter struct {
	upper
	inBatch *atomic.Int64
}

func (b *batchCounter) Flush(context.Context, pipelines.Emitter) error {
	b.inBatch.Store(0)
	return nil
}

// TestExactlyOnceKill kills (SIGKILL) a stage process in the middle of a
// transaction, without leaving the group, then runs the stage again: the
// output read_committed holds every input exactly once — nothing of the
// open transaction, nothing lost, nothing twice.
//
// With a new instance id, the dead instance's transaction stays open until
// its (short) transaction timeout; restarted under the same instance id,
// the successor's InitProducerID fences the dead one and aborts its
// transaction at once (its timeout here is 5 minutes, longer than the test).
func TestExactlyOnceKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	t.Run("new_instance", func(t *testing.T) { testKill(t, "") })
	t.Run("same_instance", func(t *testing.T) { testKill(t, "replica-0") })
}

func testKill(t *testing.T, instance string) {
	const n = 3000
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "crash.in", Partitions: 4},
		pipelines.TopicSpec{Name: "crash.out", Partitions: 4})
	kafkatest.ProduceN(t, brokers, "crash.in", n, gen)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+strings.Join(brokers, ","), crashIDEnv+"="+instance)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hung := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "HANG" {
				hung <- true
				return
			}
		}
		hung <- false
	}()
	select {
	case ok := <-hung:
		if !ok {
			t.Fatal("child exited before hanging")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child did not reach the hang point")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The child committed some batches before it hung, and left a
	// transaction open with records in it.
	before, err := kafkatest.ReadCommitted(context.Background(), brokers, "crash.out")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || len(before) > 750 {
		t.Fatalf("%d records committed before the kill, want some but at most 750", len(before))
	}
	if open := openTxnRecords(t, brokers, "crash.out"); open == 0 {
		t.Fatal("no open transaction on the output after the kill")
	}

	cfg := kafkatest.Config(brokers)
	cfg.InstanceID = instance
	kafkatest.Run(t, cfg, upperStage("crash", "crash.in", "crash.out", nil, nil))
	kafkatest.WaitRecords(t, brokers, "crash.out", n, 60*time.Second)
	time.Sleep(200 * time.Millisecond)
	recs, err := kafkatest.ReadCommitted(context.Background(), brokers, "crash.out")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, recs, n)
}

// openTxnRecords returns the offsets between the last stable offsets and the
// high watermarks of topic: records of transactions still open.
func openTxnRecords(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	hwm, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var open int64
	hwm.Each(func(o kadm.ListedOffset) {
		l, _ := lso.Lookup(topic, o.Partition)
		open += o.Offset - l.Offset
	})
	return open
}
