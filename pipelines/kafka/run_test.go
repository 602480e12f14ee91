package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// upper is a stateless stage: it emits every input value upper-cased to
// out, keyed like the input.
type upper struct {
	out   string
	count *atomic.Int64
	hook  func(rec pipelines.Record) error // optional, before emitting
}

func (u *upper) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	out.Emit(u.out, rec.Key, bytes.ToUpper(rec.Value))
	if u.hook != nil {
		if err := u.hook(rec); err != nil {
			return err
		}
	}
	if u.count != nil {
		u.count.Add(1)
	}
	return nil
}

func upperStage(name, in, out string, count *atomic.Int64, hook func(pipelines.Record) error) pipelines.Stage {
	return pipelines.Stage{
		Name:   name,
		Inputs: []string{in},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return &upper{out: out, count: count, hook: hook}, nil
		},
	}
}

func values(recs []pipelines.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

// checkExactlyOnce asserts that out holds "V<i>" exactly once for i < n.
func checkExactlyOnce(t *testing.T, recs []pipelines.Record, n int) {
	t.Helper()
	got := values(recs)
	for i := 0; i < n; i++ {
		if c := got[fmt.Sprintf("V%d", i)]; c != 1 {
			t.Errorf("V%d seen %d times, want 1", i, c)
		}
	}
	if len(recs) != n {
		t.Errorf("%d output records, want %d", len(recs), n)
	}
}

func gen(i int) ([]byte, []byte) {
	return []byte("k" + strconv.Itoa(i%37)), []byte("v" + strconv.Itoa(i))
}

// TestExactlyOnceAcrossRestart stops a stage in the middle of its input and
// starts it again: the output read_committed holds every input once.
func TestExactlyOnceAcrossRestart(t *testing.T) {
	const n = 3000
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "eo.in", Partitions: 4},
		pipelines.TopicSpec{Name: "eo.out", Partitions: 4})
	kafkatest.ProduceN(t, brokers, "eo.in", n, gen)
	cfg := kafkatest.Config(brokers)
	var count atomic.Int64
	// Past a third of the input the first run slows down, so that it is
	// stopped midway however fast the machine is.
	slow := func(pipelines.Record) error {
		if count.Load() >= n/3 {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	stop := kafkatest.Run(t, cfg, upperStage("eo", "eo.in", "eo.out", &count, slow))
	for count.Load() < n/3 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	first := count.Load()
	if first >= n {
		t.Fatalf("first run processed everything (%d); the test did not stop it midway", first)
	}
	kafkatest.Run(t, cfg, upperStage("eo", "eo.in", "eo.out", &count, nil))
	kafkatest.WaitRecords(t, brokers, "eo.out", n, 30*time.Second)
	time.Sleep(200 * time.Millisecond) // any duplicate would be committed by now
	recs, err := kafkatest.ReadCommitted(context.Background(), brokers, "eo.out")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, recs, n)
	// Keys keep their partitions: murmur2 like the Java client.
	for _, r := range recs {
		if want := javaPartition(r.Key, 4); r.Partition != want {
			t.Fatalf("key %s on partition %d, want %d", r.Key, r.Partition, want)
		}
	}
}

// javaPartition is Kafka's DefaultPartitioner for keyed records:
// toPositive(murmur2(key)) % n, written out here as a reference.
func javaPartition(key []byte, n int32) int32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	l := len(key)
	h := seed ^ uint32(l)
	for i := 0; i+4 <= l; i += 4 {
		k := uint32(key[i]) | uint32(key[i+1])<<8 | uint32(key[i+2])<<16 | uint32(key[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := key[l-l%4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h&0x7fffffff) % n
}

// TestDeadLetter: a corrupt record among good ones is dead-lettered with its
// reason, offset and original bytes; what the processor emitted for it is
// discarded; the records around it are processed.
func TestDeadLetter(t *testing.T) {
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "dl.in", Partitions: 1},
		pipelines.TopicSpec{Name: "dl.out", Partitions: 1})
	bad := []byte{0xC3, 0x01, 0xff, 'x'}
	recs := []kafka.Output{
		{Topic: "dl.in", Key: []byte("a"), Value: []byte("v0")},
		{Topic: "dl.in", Key: []byte("b"), Value: bad},
		{Topic: "dl.in", Key: nil, Value: []byte("v2")},
	}
	kafkatest.Produce(t, brokers, recs...)
	cfg := kafkatest.Config(brokers)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	kafkatest.Run(t, cfg, upperStage("dl", "dl.in", "dl.out", nil, func(r pipelines.Record) error {
		if !bytes.HasPrefix(r.Value, []byte("v")) {
			return pipelines.Reject("decode", errors.New("not a v record"))
		}
		return nil
	}))
	out := kafkatest.WaitRecords(t, brokers, "dl.out", 2, 20*time.Second)
	dl := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 20*time.Second)
	if got := values(out); len(out) != 2 || got["V0"] != 1 || got["V2"] != 1 {
		t.Fatalf("output %v, want V0 and V2 once", got)
	}
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	d, err := schemas.SingleObject().DecodeAs(schemas.DeadLetter, dl[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if d["stage"] != "dl" || d["reason_code"] != "decode" || d["source_topic"] != "dl.in" ||
		d["source_partition"] != int32(0) || d["source_offset"] != int64(1) ||
		!bytes.Equal(d["value"].([]byte), bad) || !strings.Contains(d["error"].(string), "not a v record") {
		t.Fatalf("dead letter %v", d)
	}
	if k, _ := d["key"].(map[string]any); k == nil || !bytes.Equal(k["bytes"].([]byte), []byte("b")) {
		t.Fatalf("dead letter key %v", d["key"])
	}
	if ts, _ := d["time"].(time.Time); !ts.Equal(now) {
		t.Fatalf("dead letter time %v, want %v", d["time"], now)
	}
	waitMetric(t, reg, "minecart_pipeline_records_dead_total", map[string]string{"stage": "dl", "code": "decode"}, 1)
	waitMetric(t, reg, "minecart_pipeline_records_in_total", map[string]string{"stage": "dl"}, 3)
	waitMetric(t, reg, "minecart_pipeline_records_out_total", map[string]string{"stage": "dl"}, 2)
	for _, h := range []string{"minecart_pipeline_batch_seconds", "minecart_pipeline_commit_age_seconds"} {
		if metricValue(t, reg, h, map[string]string{"stage": "dl"}) == 0 {
			t.Errorf("%s: no observation", h)
		}
	}
	if lag := metricValue(t, reg, "minecart_pipeline_consumer_lag", map[string]string{"stage": "dl", "topic": "dl.in", "partition": "0"}); lag != 0 {
		t.Errorf("lag %v after consuming everything, want 0", lag)
	}
}

// TestTransientRetry: a record failing with a plain error is retried until
// it succeeds (emitted once); one that always fails is dead-lettered as
// retries_exhausted after MaxRetries and the partition goes on.
func TestTransientRetry(t *testing.T) {
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "rt.in", Partitions: 1},
		pipelines.TopicSpec{Name: "rt.out", Partitions: 1})
	kafkatest.Produce(t, brokers,
		kafka.Output{Topic: "rt.in", Key: []byte("a"), Value: []byte("flaky")},
		kafka.Output{Topic: "rt.in", Key: []byte("b"), Value: []byte("broken")},
		kafka.Output{Topic: "rt.in", Key: []byte("c"), Value: []byte("fine")},
		kafka.Output{Topic: "rt.in", Key: []byte("d"), Value: []byte("panic")})
	cfg := kafkatest.Config(brokers)
	cfg.MaxRetries = 3
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	var mu sync.Mutex
	attempts := map[string]int{}
	kafkatest.Run(t, cfg, upperStage("rt", "rt.in", "rt.out", nil, func(r pipelines.Record) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[string(r.Value)]++
		switch {
		case string(r.Value) == "flaky" && attempts["flaky"] <= 2:
			return errors.New("database busy")
		case string(r.Value) == "broken":
			return errors.New("always down")
		case string(r.Value) == "panic":
			panic("processor bug")
		}
		return nil
	}))
	out := kafkatest.WaitRecords(t, brokers, "rt.out", 2, 20*time.Second)
	dl := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 2, 20*time.Second)
	if got := values(out); len(out) != 2 || got["FLAKY"] != 1 || got["FINE"] != 1 {
		t.Fatalf("output %v", got)
	}
	for i, want := range []string{"broken", "panic"} {
		d, err := schemas.SingleObject().DecodeAs(schemas.DeadLetter, dl[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		if d["reason_code"] != kafka.CodeRetriesExhausted || string(d["value"].([]byte)) != want {
			t.Fatalf("dead letter %d: %v", i, d)
		}
		if want == "panic" && !strings.Contains(d["error"].(string), "processor panic: processor bug") {
			t.Fatalf("dead letter error %q", d["error"])
		}
	}
	mu.Lock()
	if attempts["flaky"] != 3 || attempts["broken"] != 4 {
		t.Errorf("attempts %v, want flaky 3, broken 4 (1 + MaxRetries)", attempts)
	}
	mu.Unlock()
	waitMetric(t, reg, "minecart_pipeline_retries_total", map[string]string{"stage": "rt"}, 8)
	waitMetric(t, reg, "minecart_pipeline_records_dead_total", map[string]string{"stage": "rt", "code": kafka.CodeRetriesExhausted}, 2)
}

// waitMetric waits until the series of name with labels has value want.
func waitMetric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	waitMetricWith(t, g, name, labels, want, func(got float64) bool { return got == want })
}

// waitMetricAtLeast waits until the series is at least want.
func waitMetricAtLeast(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	waitMetricWith(t, g, name, labels, want, func(got float64) bool { return got >= want })
}

func waitMetricWith(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string, want float64, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got float64
	for time.Now().Before(deadline) {
		got = metricValue(t, g, name, labels)
		if ok(got) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
}

func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// TestSinkDeadLetter: records a sink's Write rejects are dead-lettered by
// the runtime, with the sink's code and the record's source, and the batch
// around them commits.
func TestSinkDeadLetter(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "sdl.in", Partitions: 1})
	kafkatest.Produce(t, brokers,
		kafka.Output{Topic: "sdl.in", Key: []byte("a"), Value: []byte("v0")},
		kafka.Output{Topic: "sdl.in", Key: []byte("b"), Value: []byte("bad")},
		kafka.Output{Topic: "sdl.in", Key: []byte("c"), Value: []byte("v2")})
	var mu sync.Mutex
	var stored []string
	kafkatest.RunSink(t, kafkatest.Config(brokers), pipelines.SinkStage{
		Name: "sdl", Inputs: []string{"sdl.in"}, MaxWait: 10 * time.Millisecond,
		Write: func(_ context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			mu.Lock()
			defer mu.Unlock()
			var rejected []pipelines.Rejected
			for _, r := range recs {
				if !bytes.HasPrefix(r.Value, []byte("v")) {
					rejected = append(rejected, pipelines.Rejected{Record: r, Code: "decode", Err: errors.New("not a v record")})
					continue
				}
				stored = append(stored, string(r.Value))
			}
			return rejected, nil
		},
	})
	dl := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 20*time.Second)
	d, err := schemas.SingleObject().DecodeAs(schemas.DeadLetter, dl[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if d["stage"] != "sdl" || d["reason_code"] != "decode" || d["source_offset"] != int64(1) || string(d["value"].([]byte)) != "bad" {
		t.Fatalf("dead letter %v", d)
	}
	if string(dl[0].Header("code")) != "decode" {
		t.Fatalf("dead letter headers %v", dl[0].Headers)
	}
	waitCommitted(t, brokers, "sdl", "sdl.in", 0, 3)
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 2 {
		t.Fatalf("stored %v, want v0 and v2", stored)
	}
}

// TestSinkDeadLetterRetry: Write succeeds but its dead letter cannot be
// produced (the dead-letter topic does not exist yet): only the produce is
// retried, Write is not called again, and once the topic exists the dead
// letter lands and the batch commits.
func TestSinkDeadLetterRetry(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "sdr.in", Partitions: 1})
	kafkatest.Produce(t, brokers,
		kafka.Output{Topic: "sdr.in", Key: []byte("a"), Value: []byte("v0")},
		kafka.Output{Topic: "sdr.in", Key: []byte("b"), Value: []byte("bad")},
		kafka.Output{Topic: "sdr.in", Key: []byte("c"), Value: []byte("v2")})
	var writes, dlFailures atomic.Int32
	cfg := kafkatest.Config(brokers)
	cfg.DeadLetterTopic = "sdr.dead"
	cfg.Logger = slog.New(dlFailureCounter{&dlFailures})
	// Fail a produce to a missing topic at its first metadata answer.
	cfg.ClientOptions = []kgo.Opt{kgo.UnknownTopicRetries(0)}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	kafkatest.RunSink(t, cfg, pipelines.SinkStage{
		// The three records make one batch, written as soon as all are in.
		Name: "sdr", Inputs: []string{"sdr.in"}, MaxRows: 3, MaxWait: time.Minute,
		Write: func(_ context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			writes.Add(1)
			var rejected []pipelines.Rejected
			for _, r := range recs {
				if !bytes.HasPrefix(r.Value, []byte("v")) {
					rejected = append(rejected, pipelines.Rejected{Record: r, Code: "decode", Err: errors.New("not a v record")})
				}
			}
			return rejected, nil
		},
	})
	for deadline := time.Now().Add(20 * time.Second); dlFailures.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed dead-letter produces, want 2", dlFailures.Load())
		}
	}
	kafkatest.CreateTopics(t, brokers, pipelines.TopicSpec{Name: "sdr.dead", Partitions: 1})
	dl := kafkatest.WaitRecords(t, brokers, "sdr.dead", 1, 20*time.Second)
	var d avro.DeadLetter
	if err := schemas.SingleObject().Unmarshal(dl[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.Stage != "sdr" || d.ReasonCode != "decode" || d.SourceOffset != 1 {
		t.Fatalf("dead letter %+v", d)
	}
	waitCommitted(t, brokers, "sdr", "sdr.in", 0, 3)
	if n := writes.Load(); n != 1 {
		t.Fatalf("Write called %d times, want once", n)
	}
	if n := metricValue(t, reg, "minecart_sink_writes_total", map[string]string{"stage": "sdr", "result": "error"}); n != 0 {
		t.Fatalf("%v failed writes counted, want 0", n)
	}
}

// dlFailureCounter is a slog handler that counts the warnings whose error
// is a failed dead-letter produce.
type dlFailureCounter struct{ n *atomic.Int32 }

func (h dlFailureCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h dlFailureCounter) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), "dead letters") {
			h.n.Add(1)
		}
		return true
	})
	return nil
}

func (h dlFailureCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h dlFailureCounter) WithGroup(string) slog.Handler      { return h }

// waitCommitted waits until group's committed offset of topic/p is want.
func waitCommitted(t testing.TB, brokers []string, group, topic string, p int32, want int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	got := int64(-1)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		offs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			continue // the group has committed nothing yet
		}
		if o, ok := offs.Lookup(topic, p); ok && o.Err == nil {
			if got = o.At; got == want {
				return
			}
		}
	}
	t.Fatalf("group %s: committed offset of %s/%d %d, want %d", group, topic, p, got, want)
}
