package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// ticking counts its records; Tick emits the count with the injected time,
// Flush emits how many records the batch held.
type ticking struct {
	task    pipelines.Task
	inBatch int
}

func (p *ticking) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	p.inBatch++
	return nil
}

func (p *ticking) Tick(_ context.Context, now time.Time, out pipelines.Emitter) error {
	out.EmitTo("tk.out", p.task.Partition, []byte("tick"), []byte(now.UTC().Format(time.RFC3339)))
	return nil
}

func (p *ticking) Flush(_ context.Context, out pipelines.Emitter) error {
	if p.inBatch > 0 {
		out.EmitTo("tk.out", p.task.Partition, []byte("flush"), []byte(strconv.Itoa(p.inBatch)))
	}
	p.inBatch = 0
	return nil
}

// TestTickerFlusher: ticks run on idle tasks with the injected clock; every
// batch is flushed before its commit (the flushed counts add up to the
// input).
func TestTickerFlusher(t *testing.T) {
	const n = 1200
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "tk.in", Partitions: 2},
		pipelines.TopicSpec{Name: "tk.out", Partitions: 2})
	cfg := kafkatest.Config(brokers)
	cfg.MaxBatch = 100
	fake := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg.Now = func() time.Time { return fake }
	kafkatest.Run(t, cfg, pipelines.Stage{
		Name:      "tk",
		Inputs:    []string{"tk.in"},
		TickEvery: 20 * time.Millisecond,
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return &ticking{task: task}, nil
		},
	})
	// No input yet: both tasks tick anyway.
	ticks := kafkatest.WaitRecords(t, brokers, "tk.out", 4, 20*time.Second)
	parts := map[int32]bool{}
	for _, r := range ticks {
		if string(r.Key) != "tick" || string(r.Value) != "2030-01-02T03:04:05Z" {
			t.Fatalf("unexpected record %s=%s", r.Key, r.Value)
		}
		parts[r.Partition] = true
	}
	if len(parts) != 2 {
		t.Fatalf("ticks on partitions %v, want both", parts)
	}
	kafkatest.ProduceN(t, brokers, "tk.in", n, gen)
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := kafkatest.ReadCommitted(context.Background(), brokers, "tk.out")
		if err != nil {
			t.Fatal(err)
		}
		flushed := 0
		for _, r := range recs {
			if string(r.Key) == "flush" {
				c, _ := strconv.Atoi(string(r.Value))
				flushed += c
			}
		}
		if flushed == n {
			break
		}
		if flushed > n || time.Now().After(deadline) {
			t.Fatalf("flushed %d records, want %d", flushed, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunSink: Write fails three times; offsets are not committed until it
// succeeds; then every record has been written and the offsets are at the
// end.
func TestRunSink(t *testing.T) {
	const n = 500
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "sk.in", Partitions: 3})
	kafkatest.ProduceN(t, brokers, "sk.in", n, gen)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	committed := func() int64 {
		offs, err := adm.FetchOffsets(context.Background(), "sk")
		if errors.Is(err, kerr.GroupIDNotFound) {
			return 0 // nothing committed yet
		}
		if err != nil {
			t.Error(err)
			return -1
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return sum
	}
	var (
		mu      sync.Mutex
		written = map[string]int{}
		fails   atomic.Int32
	)
	cfg := kafkatest.Config(brokers)
	kafkatest.RunSink(t, cfg, pipelines.SinkStage{
		Name:    "sk",
		Inputs:  []string{"sk.in"},
		MaxRows: 1000,
		MaxWait: 50 * time.Millisecond,
		Write: func(_ context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			if fails.Load() < 3 {
				fails.Add(1)
				if c := committed(); c > 0 {
					t.Errorf("offsets committed (%d) before a successful write", c)
				}
				return nil, errors.New("clickhouse down")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				written[string(r.Value)]++
			}
			return nil, nil
		},
	})
	deadline := time.Now().Add(30 * time.Second)
	for committed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d offsets, want %d", committed(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if written["v"+strconv.Itoa(i)] == 0 {
			t.Fatalf("v%d never written", i)
		}
	}
	if fails.Load() != 3 {
		t.Fatalf("%d failed writes, want 3", fails.Load())
	}
}

// TestTable follows a compacted topic: latest value per key, nil deletes,
// WaitCaught after the initial contents, later updates arrive.
// TestTableWait: Wait returns once a value written after it began shows,
// and ctx's error for a key that never comes.
func TestTableWait(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "tw", Partitions: 1, Compacted: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tb, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "tw")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	done := make(chan error, 1)
	go func() {
		done <- tb.Wait(ctx, "k", func(v []byte, ok bool) bool { return ok && string(v) == "2" })
	}()
	kafkatest.Produce(t, brokers, kafka.Output{Topic: "tw", Key: []byte("k"), Value: []byte("1")},
		kafka.Output{Topic: "tw", Key: []byte("k"), Value: []byte("2")})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := tb.Wait(short, "never", func(_ []byte, ok bool) bool { return ok }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait for a missing key: %v", err)
	}
}

func TestTable(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "tb", Partitions: 2, Compacted: true})
	kafkatest.Produce(t, brokers,
		kafka.Output{Topic: "tb", Key: []byte("a"), Value: []byte("1")},
		kafka.Output{Topic: "tb", Key: []byte("b"), Value: []byte("2")},
		kafka.Output{Topic: "tb", Key: []byte("a"), Value: []byte("3")},
		kafka.Output{Topic: "tb", Key: []byte("b"), Value: nil},
		kafka.Output{Topic: "tb", Key: []byte("c"), Value: []byte("4")})
	ctx := context.Background()
	tb, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "tb")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := tb.WaitCaught(wctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := tb.Get("a"); !ok || string(v) != "3" {
		t.Fatalf("a = %q %v, want 3", v, ok)
	}
	if _, ok := tb.Get("b"); ok {
		t.Fatal("b still present after its tombstone")
	}
	all := map[string]string{}
	tb.Range(func(k string, v []byte) bool { all[k] = string(v); return true })
	if len(all) != 2 || all["c"] != "4" {
		t.Fatalf("table %v", all)
	}
	kafkatest.Produce(t, brokers, kafka.Output{Topic: "tb", Key: []byte("d"), Value: []byte("5")})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if v, ok := tb.Get("d"); ok && string(v) == "5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("update never seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTableMissingTopic: NewTable on a topic that does not exist returns
// the error (a table that stayed empty would leave its service not ready
// for good), and so does Reader.Follow.
func TestTableMissingTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tb, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "no.such.topic")
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		if err == nil {
			tb.Close()
		}
		t.Fatalf("NewTable on a missing topic: %v, want %v", err, kerr.UnknownTopicOrPartition)
	}
	rd, err := kafka.NewReader(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := rd.Follow(ctx, "no.such.topic", func(pipelines.Record) error { return nil }, nil); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("Follow on a missing topic: %v, want %v", err, kerr.UnknownTopicOrPartition)
	}
}

// TestEnsureTopics creates topics with their configs and is idempotent.
func TestEnsureTopics(t *testing.T) {
	brokers := kafkatest.Broker(t)
	specs := []pipelines.TopicSpec{
		{Name: "et.log", Partitions: 3, Compacted: true},
		{Name: "et.keep", Partitions: 1},
		{Name: "et.week", Partitions: 2, Retention: 7 * 24 * time.Hour},
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := kafka.EnsureTopics(ctx, brokers, specs); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx, "et.log", "et.keep", "et.week")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if got := len(tds[s.Name].Partitions); got != int(s.Partitions) {
			t.Errorf("%s: %d partitions, want %d", s.Name, got, s.Partitions)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "et.log", "et.keep", "et.week")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"et.log":  {"cleanup.policy": "compact"},
		"et.keep": {"retention.ms": "-1"},
		"et.week": {"retention.ms": "604800000"},
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if w, ok := want[rc.Name][c.Key]; ok {
				if c.MaybeValue() != w {
					t.Errorf("%s %s = %s, want %s", rc.Name, c.Key, c.MaybeValue(), w)
				}
				delete(want[rc.Name], c.Key)
			}
		}
	}
	for name, left := range want {
		if len(left) > 0 {
			t.Errorf("%s: configs %v missing", name, left)
		}
	}
	if err := kafka.EnsureTopics(ctx, brokers, []pipelines.TopicSpec{{Name: "et.log", Partitions: 4}}); err == nil {
		t.Error("no error for an existing topic with fewer partitions than its spec")
	}
}

// TestRunSinkRestart: a sink stopped while its Write fails commits nothing;
// the next run writes every record.
func TestRunSinkRestart(t *testing.T) {
	const n = 300
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "sr.in", Partitions: 2})
	kafkatest.ProduceN(t, brokers, "sr.in", n, gen)
	cfg := kafkatest.Config(brokers)
	var failed atomic.Int32
	stop := kafkatest.RunSink(t, cfg, pipelines.SinkStage{
		Name: "sr", Inputs: []string{"sr.in"}, MaxRows: 1000, MaxWait: 20 * time.Millisecond,
		Write: func(context.Context, []pipelines.Record) ([]pipelines.Rejected, error) {
			failed.Add(1)
			return nil, errors.New("down")
		},
	})
	for failed.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	var mu sync.Mutex
	written := map[string]bool{}
	kafkatest.RunSink(t, cfg, pipelines.SinkStage{
		Name: "sr", Inputs: []string{"sr.in"}, MaxRows: 1000, MaxWait: 20 * time.Millisecond,
		Write: func(_ context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				written[string(r.Value)] = true
			}
			return nil, nil
		},
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		got := len(written)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records written after restart, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProducerErrors: the producer returns the broker's real errors.
func TestProducerErrors(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "pe", Partitions: 1})
	p, err := kafka.NewProducer(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	if err := p.ProduceSync(ctx, "pe", []byte("k"), []byte("v"), pipelines.Header{Key: "h", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	err = p.ProduceSync(ctx, "pe", nil, make([]byte, 2<<20))
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("2 MiB record: err %v, want a too-large error", err)
	}
	err = p.ProduceBatch(ctx, []kafka.Output{
		{Topic: "pe", Value: []byte("ok")},
		{Topic: "pe", Value: make([]byte, 2<<20)},
	})
	if err == nil {
		t.Fatal("batch with a too-large record: no error")
	}
	recs := kafkatest.WaitRecords(t, brokers, "pe", 2, 10*time.Second)
	if string(recs[0].Value) != "v" || string(recs[0].Header("h")) != "1" || string(recs[1].Value) != "ok" {
		t.Fatalf("records %+v", recs)
	}
}

// copart checks that every record reaches the task of its partition.
type copart struct {
	task pipelines.Task
	bad  *atomic.Int32
}

func (c copart) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if rec.Partition != c.task.Partition {
		c.bad.Add(1)
	}
	out.EmitTo("cp.out", c.task.Partition, rec.Key, []byte(rec.Topic+"/"+string(rec.Value)))
	return nil
}

// TestCopartitionedInputs: a stage with two inputs gets partition p of both
// in task p, with two members sharing the group; inputs with different
// partition counts are refused.
func TestCopartitionedInputs(t *testing.T) {
	const n = 400
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "cp.a", Partitions: 4},
		pipelines.TopicSpec{Name: "cp.b", Partitions: 4},
		pipelines.TopicSpec{Name: "cp.c", Partitions: 3},
		pipelines.TopicSpec{Name: "cp.out", Partitions: 4})
	kafkatest.ProduceN(t, brokers, "cp.a", n, gen)
	kafkatest.ProduceN(t, brokers, "cp.b", n, gen)
	var bad atomic.Int32
	st := pipelines.Stage{
		Name:   "cp",
		Inputs: []string{"cp.a", "cp.b"},
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return copart{task: task, bad: &bad}, nil
		},
	}
	cfg := kafkatest.Config(brokers)
	kafkatest.Run(t, cfg, st)
	kafkatest.Run(t, cfg, st)
	recs := kafkatest.WaitRecords(t, brokers, "cp.out", 2*n, 30*time.Second)
	if bad.Load() != 0 {
		t.Fatalf("%d records reached the task of another partition", bad.Load())
	}
	got := values(recs)
	for i := 0; i < n; i++ {
		for _, topic := range []string{"cp.a", "cp.b"} {
			if v := topic + "/v" + strconv.Itoa(i); got[v] != 1 {
				t.Fatalf("%s seen %d times", v, got[v])
			}
		}
	}
	st.Inputs = []string{"cp.a", "cp.c"}
	if err := kafka.Run(context.Background(), cfg, st); err == nil {
		t.Fatal("Run accepted inputs with 4 and 3 partitions")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []kafka.Config{
		{},
		{Brokers: []string{"x:1"}, MaxBatch: -1},
		{Brokers: []string{"x:1"}, SessionTimeout: -time.Second},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (kafka.Config{Brokers: []string{"x:1"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestTableTransactional: a table over a topic written in transactions
// skips aborted records and still catches up when the log ends with an
// abort marker.
func TestTableTransactional(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "tt", Partitions: 1, Compacted: true})
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("tt-writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, commit := range []bool{true, false} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := []byte(strconv.Itoa(i))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tt", Key: []byte("k"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "tt")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := tb.WaitCaught(wctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := tb.Get("k"); string(v) != "0" {
		t.Fatalf("k = %q, want the committed 0", v)
	}
}

// TestReadAbortedTail: a read ends at a last stable offset just past
// records of a transaction that was aborted after another one began, so
// its abort marker lies beyond the end: the aborted records are never
// delivered, and the read still ends while nothing past the end is
// readable (b stays open): the fetch position, not a record, says so.
func TestReadAbortedTail(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "rat", Partitions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	txn := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("rat"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	produce := func(cl *kgo.Client, v string) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	a := txn("rat-a")
	produce(a, "a0") // offset 0
	produce(a, "a1") // offset 1
	b := txn("rat-b")
	produce(b, "b2") // offset 2: b is open from here
	if err := a.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err) // a's abort marker: offset 3
	}
	rd, err := kafka.NewReader(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ends, err := rd.Ends(ctx, "rat")
	if err != nil || ends[0] != 2 {
		t.Fatalf("end %v %v, want 2 (b open)", ends, err)
	}
	// b stays open: nothing past the end is ever readable, and the read
	// still ends, on its fetch position.
	var got []string
	if err := rd.Read(ctx, "rat", 0, 0, ends[0], func(r pipelines.Record) error {
		got = append(got, string(r.Value))
		return nil
	}); err != nil {
		t.Fatalf("read [0, 2): %v (read %q)", err, got)
	}
	if len(got) != 0 {
		t.Fatalf("read %q, want nothing (a aborted)", got)
	}
}

// TestReaderBehind: a group's backlog below noted ends is the committed
// records past its commit; a committed transaction's marker is no backlog,
// records produced after the ends are not counted, and a partition the
// group never committed counts from 0.
func TestReaderBehind(t *testing.T) {
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "rb", Partitions: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("rb-tx"), kgo.DefaultProduceTopic("rb"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	txn := func(p int32, vals ...string) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v), Partition: p}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	txn(0, "a", "b", "c") // offsets 0-2, marker 3
	txn(1, "x")           // offset 0, marker 1
	rd, err := kafka.NewReader(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	parts, err := rd.Ends(ctx, "rb")
	if err != nil {
		t.Fatal(err)
	}
	ends := map[string]map[int32]int64{"rb": parts}
	txn(0, "late") // after the noted ends: not counted
	adm := kadm.NewClient(cl)
	commit := func(p int32, at int64) {
		var o kadm.Offsets
		o.Add(kadm.Offset{Topic: "rb", Partition: p, At: at})
		if r, err := adm.CommitOffsets(ctx, "rb-group", o); err != nil || r.Error() != nil {
			t.Fatal(err, r.Error())
		}
	}
	for _, c := range []struct {
		p    int32
		at   int64
		want int
	}{{0, 1, 2 + 1}, {0, 3, 0 + 1}, {1, 1, 0}} {
		commit(c.p, c.at)
		if got, err := rd.Behind(ctx, "rb-group", ends); err != nil || got != c.want {
			t.Fatalf("after committing %d/%d: %d behind (%v), want %d", c.p, c.at, got, err, c.want)
		}
	}
}

// TestRunSinkRebalance: two sink members share the input, one leaves in
// the middle: every record is written at least once and the offsets end
// at the end of the input.
func TestRunSinkRebalance(t *testing.T) {
	const n = 3000
	brokers := kafkatest.Broker(t, pipelines.TopicSpec{Name: "sb.in", Partitions: 4})
	kafkatest.ProduceN(t, brokers, "sb.in", n, gen)
	var mu sync.Mutex
	written := map[string]int{}
	var writes atomic.Int64
	st := pipelines.SinkStage{
		Name: "sb", Inputs: []string{"sb.in"}, MaxRows: 100, MaxWait: 10 * time.Millisecond,
		Write: func(_ context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				written[string(r.Value)]++
			}
			writes.Add(1)
			return nil, nil
		},
	}
	cfg := kafkatest.Config(brokers)
	stopA := kafkatest.RunSink(t, cfg, st)
	waitAtLeast(t, &writes, 3)
	kafkatest.RunSink(t, cfg, st)
	waitAtLeast(t, &writes, 10)
	stopA()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var sum int64
		if offs, err := adm.FetchOffsets(context.Background(), "sb"); err == nil {
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		}
		if sum == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %d offsets, want %d", sum, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if written["v"+strconv.Itoa(i)] == 0 {
			t.Fatalf("v%d never written", i)
		}
	}
}

// releasing emits two records per Flush, "a" (released at once with
// pipelines.Release) and "b", both valued with the batch's record count.
// Its first Flush waits until "a" is readable uncommitted (so it went out
// before Flush returned), then fails: that transaction must abort.
type releasing struct {
	inBatch int
	seen    func(ctx context.Context) error
	failed  *atomic.Bool
}

func (p *releasing) Process(_ context.Context, _ pipelines.Record, _ pipelines.Emitter) error {
	p.inBatch++
	return nil
}

func (p *releasing) Flush(ctx context.Context, out pipelines.Emitter) error {
	if p.inBatch == 0 {
		return nil
	}
	n := []byte(strconv.Itoa(p.inBatch))
	p.inBatch = 0
	out.EmitTo("rl.out", 0, []byte("a"), n)
	pipelines.Release(out)
	if p.failed.CompareAndSwap(false, true) {
		if err := p.seen(ctx); err != nil {
			return err
		}
		return errors.New("flush fails after its release")
	}
	out.EmitTo("rl.out", 0, []byte("b"), n)
	return nil
}

// TestFlushRelease: what a Flush releases is produced before Flush
// returns (read uncommitted while Flush waits), and a Flush that fails
// after a release aborts its transaction: read committed, every input
// is counted exactly once and each "a" has its "b".
func TestFlushRelease(t *testing.T) {
	const n = 500
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "rl.in", Partitions: 1},
		pipelines.TopicSpec{Name: "rl.out", Partitions: 1})
	uncommitted, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("rl.out"),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer uncommitted.Close()
	var released atomic.Bool
	seen := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			fs := uncommitted.PollFetches(ctx)
			if ctx.Err() != nil {
				return errors.New("the released record is not on the topic before Flush returned")
			}
			found := false
			fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Key) == "a" })
			if found {
				released.Store(true)
				return nil
			}
		}
	}
	var failed atomic.Bool
	cfg := kafkatest.Config(brokers)
	cfg.MaxBatch = 100
	kafkatest.Run(t, cfg, pipelines.Stage{
		Name:   "rl",
		Inputs: []string{"rl.in"},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return &releasing{seen: seen, failed: &failed}, nil
		},
	})
	kafkatest.ProduceN(t, brokers, "rl.in", n, gen)
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, err := kafkatest.ReadCommitted(context.Background(), brokers, "rl.out")
		if err != nil {
			t.Fatal(err)
		}
		counted, open := 0, ""
		for _, r := range recs {
			switch {
			case string(r.Key) == "a" && open == "":
				open = string(r.Value)
				c, _ := strconv.Atoi(open)
				counted += c
			case string(r.Key) == "b" && string(r.Value) == open:
				open = ""
			default:
				t.Fatalf("committed output out of pairs: %s=%s after a=%q", r.Key, r.Value, open)
			}
		}
		if counted == n && open == "" && failed.Load() {
			if !released.Load() {
				t.Fatal("the released record was not on the topic before Flush returned")
			}
			return
		}
		if counted > n || time.Now().After(deadline) {
			t.Fatalf("counted %d records, want %d (the failed Flush's transaction committed?)", counted, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
