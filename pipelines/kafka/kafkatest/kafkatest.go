// Package kafkatest holds test helpers for code built on the pipelines
// runtime: an embedded broker on a random port, producing and reading
// records (read_committed), running a stage for the length of a test, and
// the bare franz-go consume-and-produce baseline that stage benchmarks
// compare themselves with.
//
// Typical use in a stage's test:
//
//	brokers := kafkatest.Broker(t)               // kfake with every Topology topic
//	cfg := kafkatest.Config(brokers)             // short session timeout, quick retries
//	stop := kafkatest.Run(t, cfg, myStage)       // kafka.Run until stop() or the test ends
//	kafkatest.ProduceN(t, brokers, pipelines.TopicTelemetryRaw, 100, gen)
//	out := kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryClean, 100, 20*time.Second)
//	stop()
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// Logger is the logger the helpers give the runtime: warnings and errors
// to stderr (shown by go test for failing packages only).
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Broker starts an in-memory embedded broker on 127.0.0.1 with a random
// port, with every topic of pipelines.Topology plus extra, and closes it
// when the test ends. It returns the seed brokers.
func Broker(t testing.TB, extra ...pipelines.TopicSpec) []string {
	t.Helper()
	b := StartBroker(t, "", extra...)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b.Addrs()
}

// StartBroker starts an embedded broker on a random port with dataDir
// ("": in memory) and the extra topics; the caller closes it (tests that
// restart the broker).
func StartBroker(t testing.TB, dataDir string, extra ...pipelines.TopicSpec) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dataDir, Logger: Logger()})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	if err := kafka.EnsureTopics(ctx, b.Addrs(), append(slices.Clip(pipelines.Topology), extra...)); err != nil {
		b.Close()
		t.Fatalf("create topics: %v", err)
	}
	return b
}

// CreateTopics creates topics on brokers.
func CreateTopics(t testing.TB, brokers []string, specs ...pipelines.TopicSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, specs); err != nil {
		t.Fatalf("create topics: %v", err)
	}
}

// Config returns a runtime configuration for tests: a 1s session timeout
// (so a killed member's partitions move quickly), 10ms first retry backoff,
// batches of at most 500 records, warnings to stderr.
func Config(brokers []string) kafka.Config {
	return kafka.Config{
		Brokers:         brokers,
		Logger:          Logger(),
		SessionTimeout:  time.Second,
		RetryBackoff:    10 * time.Millisecond,
		MaxRetryBackoff: 200 * time.Millisecond,
		MaxBatch:        500,
		ShutdownTimeout: 5 * time.Second,
	}
}

// Run runs kafka.Run(cfg, st) in a goroutine. The returned stop cancels
// it and waits for it to return (it is also called when the test ends);
// Run's error fails the test.
func Run(t testing.TB, cfg kafka.Config, st pipelines.Stage) (stop func()) {
	t.Helper()
	return runFn(t, func(ctx context.Context) error { return kafka.Run(ctx, cfg, st) })
}

// RunSink is Run for kafka.RunSink.
func RunSink(t testing.TB, cfg kafka.Config, st pipelines.SinkStage) (stop func()) {
	t.Helper()
	return runFn(t, func(ctx context.Context) error { return kafka.RunSink(ctx, cfg, st) })
}

func runFn(t testing.TB, fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Produce writes recs (acks=all) and fails the test on error.
func Produce(t testing.TB, brokers []string, recs ...kafka.Output) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.Config{Brokers: brokers, Logger: Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.ProduceBatch(ctx, recs); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// ProduceN writes n records to topic, record i with the key and value
// gen(i) returns.
func ProduceN(t testing.TB, brokers []string, topic string, n int, gen func(i int) (key, value []byte)) {
	t.Helper()
	recs := make([]kafka.Output, n)
	for i := range recs {
		k, v := gen(i)
		recs[i] = kafka.Output{Topic: topic, Key: k, Value: v}
	}
	Produce(t, brokers, recs...)
}

// ReadCommitted returns every committed record of topic up to the end
// offsets (last stable offsets, kafka.Reader.Ends) at the time of the call,
// partition by partition in offset order. It does not wait for the
// transactions open then (as kafka.Reader.End would): a test may look at a
// topic while a killed writer's transaction is still open.
func ReadCommitted(ctx context.Context, brokers []string, topic string) ([]pipelines.Record, error) {
	rd, err := kafka.NewReader(kafka.Config{Brokers: brokers, Logger: Logger()})
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	ends, err := rd.Ends(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []pipelines.Record
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		if err := rd.Read(ctx, topic, p, 0, ends[p], func(r pipelines.Record) error {
			out = append(out, r)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
	}
	return out, nil
}

// WaitRecords reads topic (read_committed) until it holds at least n
// records or timeout passes, and returns what it read; fewer than n fails
// the test.
func WaitRecords(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []pipelines.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline)+time.Second)
		recs, err := ReadCommitted(ctx, brokers, topic)
		cancel()
		if err == nil && len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: %d records after %v, want %d (err %v)", topic, len(recs), timeout, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Passthrough is the baseline of stage benchmarks: a bare franz-go client
// consumes n records of in (direct, from the start, read_committed) and
// produces their key and value to out (acks=all, idempotent, murmur2 by
// key), with no group, transactions, decoding or metrics. It returns the
// time from the first poll to the last acknowledgement.
func Passthrough(ctx context.Context, brokers []string, in, out string, n int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	var (
		mu   sync.Mutex
		perr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, promise)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	return time.Since(start), perr
}

// TxnPassthrough is the exactly-once baseline of stage benchmarks: what a
// stage does with the runtime, without the runtime. A bare franz-go
// kgo.GroupTransactSession with the runtime's consumer and producer
// settings (consumer group, range balancer, read_committed, 500 ms fetch
// wait, sessionTimeout, murmur2 by key) polls at most maxBatch records of
// in at a time and, in one transaction per poll, produces their key, value
// and headers to out and commits their offsets; no decoding, processors,
// changelog, dead letters or metrics. It returns once the group has
// committed n records of in (from an empty group: the records from the
// start), with the time from its first poll to its last commit. Time it
// from outside, by the group's committed offsets, the way the stage is
// timed, for a like-for-like ratio.
func TxnPassthrough(ctx context.Context, brokers []string, group, in, out string, maxBatch, n int, sessionTimeout time.Duration) (time.Duration, error) {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(max(sessionTimeout/4, 50*time.Millisecond)),
		kgo.TransactionalID(group+"-bare"),
		kgo.TransactionTimeout(30*time.Second),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	var (
		mu    sync.Mutex
		perr  error
		start time.Time
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for done := 0; done < n; {
		fs := sess.PollRecords(ctx, maxBatch)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		}
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Headers: r.Headers}, promise)
		})
		if err := sess.Client().Flush(ctx); err != nil {
			return 0, err
		}
		mu.Lock()
		commit := perr == nil
		mu.Unlock()
		committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
		if err != nil {
			return 0, err
		}
		if !commit {
			return 0, perr
		}
		if committed {
			done += fs.NumRecords()
		}
	}
	return time.Since(start), nil
}
