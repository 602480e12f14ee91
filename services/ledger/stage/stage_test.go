package stage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
)

func enc(t testing.TB, r schemas.Record) []byte {
	t.Helper()
	b, err := schemas.SingleObject().Marshal(r)
	if err != nil {
		t.Fatalf("encode %s: %v", r.AvroName(), err)
	}
	return b
}

// request is the ledger request of a debit or adjustment entry.
func request(e ledger.Entry) *avro.DebitRequest {
	return &avro.DebitRequest{
		RequestID: e.ID, Kind: avro.RequestKind(e.Kind.String()), Account: e.Account, VehicleID: e.VehicleID,
		Amount: e.Amount, Reason: e.Reason, Partner: e.Partner, Item: e.Item, RedemptionID: e.RedemptionID,
		Ref: e.Ref, RequestedAt: time.UnixMilli(e.RequestedAtMs).UTC(),
	}
}

// scoreStream is what 2 scoring tasks write for vehicles x days: each
// task's scores of a day then its watermark, the two tasks interleaved
// differently each day, and some score records repeated (redelivery).
func scoreStream(t testing.TB, vehicles, days int, seed uint64) []kafka.Output {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []kafka.Output
	var sent []kafka.Output
	for d := 1; d <= days; d++ {
		var per [2][]kafka.Output
		for i := 0; i < vehicles; i++ {
			v := fmt.Sprintf("veh-%03d", i)
			rec := kafka.Output{Topic: pipelines.TopicScores, Key: []byte(v), Value: enc(t, ledgertest.Score(v, d, int64(10+i%7)))}
			per[i%2] = append(per[i%2], rec)
			sent = append(sent, rec)
		}
		for _, task := range r.Perm(2) {
			out = append(out, per[task]...)
			out = append(out, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(fmt.Sprintf("wm/%d", task)),
				Value: enc(t, ledgertest.Watermark(task, 2, int64(d+1)*ledgertest.DayMs))})
			// Redeliver a few earlier scores.
			for k := 0; k < 3; k++ {
				out = append(out, sent[r.IntN(len(sent))])
			}
		}
	}
	return out
}

// expectedBook builds, with the pure Book, the book the stage must write
// for the scores of scoreStream.
func expectedBook(t testing.TB, s *ledger.Signer, vehicles, days, perBlock int) *ledger.Book {
	b := ledger.NewBook()
	for d := 1; d <= days; d++ {
		var rel ledger.Release
		rel.TimestampMs = int64(d+1) * ledgertest.DayMs
		for i := 0; i < vehicles; i++ {
			v := fmt.Sprintf("veh-%03d", i)
			e, err := ledger.CreditFromScore(ledgertest.Score(v, d, int64(10+i%7)))
			if err != nil {
				t.Fatal(err)
			}
			rel.Entries = append(rel.Entries, e)
		}
		slices.SortFunc(rel.Entries, func(a, b ledger.Entry) int { return cmp.Compare(a.VehicleID, b.VehicleID) })
		if _, _, _, err := b.Append(rel, perBlock, s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// crashy wraps the processor and fails the transaction (Flush error) every
// n-th batch: the runtime aborts it and rebuilds the task from the blocks
// topic and the changelog, as after a crash between two steps.
type crashy struct {
	*Processor
	batches *atomic.Int64
	every   int64
}

func (c crashy) Flush(ctx context.Context, out pipelines.Emitter) error {
	if c.batches.Add(1)%c.every == 0 {
		return errors.New("injected crash")
	}
	return c.Processor.Flush(ctx, out)
}

func stageConfig(t testing.TB, brokers []string, perBlock int) Config {
	return Config{
		Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: perBlock,
		Serde: schemas.SingleObject(), Blocks: blocksOn(t, brokers), Logger: kafkatest.Logger(),
	}
}

// blocksOn reads the blocks topic of brokers.
func blocksOn(t testing.TB, brokers []string) *blocks.Reader {
	t.Helper()
	r, err := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newStage(t testing.TB, cfg Config) pipelines.Stage {
	t.Helper()
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func runConfig(brokers []string, batch int) kafka.Config {
	c := kafkatest.Config(brokers)
	c.Serde = schemas.SingleObject()
	c.MaxBatch = batch
	return c
}

// waitBook waits until the blocks topic holds n entries and returns the
// verified summary.
func waitBook(t *testing.T, brokers []string, pub []byte, n uint64) ledger.Summary {
	t.Helper()
	src := blocksOn(t, brokers)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sum, err := ledger.Verify(ctx, src, pub)
		cancel()
		if err != nil {
			t.Fatalf("verify blocks topic: %v", err)
		}
		if sum.Entries >= n {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("blocks topic: %d entries, want %d", sum.Entries, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStageSameRootAcrossCrashes runs the ledger stage on a real broker
// three ways — uninterrupted; stopped and restarted between input chunks;
// with a crash injected every few transactions, the last two also draining
// each day over several transactions — and requires the same
// final head (root and block chain) from all three, equal to the pure
// Book's, with every vehicle-day credited exactly once despite
// redelivered scores.
func TestStageSameRootAcrossCrashes(t *testing.T) {
	const vehicles, days, perBlock = 40, 4, 16
	signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	want := expectedBook(t, signer, vehicles, days, perBlock)
	stream := scoreStream(t, vehicles, days, 1)

	t.Run("uninterrupted", func(t *testing.T) {
		brokers := kafkatest.Broker(t)
		kafkatest.Produce(t, brokers, stream...)
		stop := kafkatest.Run(t, runConfig(brokers, 500), newStage(t, stageConfig(t, brokers, perBlock)))
		sum := waitBook(t, brokers, signer.Public(), want.Size())
		stop()
		checkHead(t, sum, want)
	})
	t.Run("restarts", func(t *testing.T) {
		brokers := kafkatest.Broker(t)
		chunks := 4
		for c := 0; c < chunks; c++ {
			lo, hi := c*len(stream)/chunks, (c+1)*len(stream)/chunks
			kafkatest.Produce(t, brokers, stream[lo:hi]...)
			cfg := stageConfig(t, brokers, perBlock)
			cfg.MaxReleaseEntries = 2 * perBlock // days drained over several transactions
			stop := kafkatest.Run(t, runConfig(brokers, 13), newStage(t, cfg))
			waitConsumed(t, brokers, hi)
			stop()
		}
		// The last day may still be queued: a last restart drains it from
		// the changelog.
		cfg := stageConfig(t, brokers, perBlock)
		cfg.MaxReleaseEntries = 2 * perBlock
		stop := kafkatest.Run(t, runConfig(brokers, 13), newStage(t, cfg))
		sum := waitBook(t, brokers, signer.Public(), want.Size())
		stop()
		checkHead(t, sum, want)
	})
	t.Run("crashes", func(t *testing.T) {
		brokers := kafkatest.Broker(t)
		kafkatest.Produce(t, brokers, stream...)
		var batches atomic.Int64
		cfg := stageConfig(t, brokers, perBlock)
		cfg.MaxReleaseEntries = 3 * perBlock
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		st := newStage(t, cfg)
		inner := st.NewProcessor
		st.NewProcessor = func(ctx context.Context, task pipelines.Task) (pipelines.Processor, error) {
			p, err := inner(ctx, task)
			if err != nil {
				return nil, err
			}
			return crashy{Processor: p.(*Processor), batches: &batches, every: 3}, nil
		}
		stop := kafkatest.Run(t, runConfig(brokers, 11), st)
		sum := waitBook(t, brokers, signer.Public(), want.Size())
		stop()
		checkHead(t, sum, want)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		starts := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() == "minecart_ledger_task_starts_total" {
				for _, m := range mf.GetMetric() {
					starts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		if starts["resumed"] < 2 {
			t.Errorf("task starts %v: want most aborts resumed from the previous book", starts)
		}
		t.Logf("task starts after injected crashes: %v", starts)
		if batches.Load() < 6 {
			t.Errorf("only %d batches: the crash injection did not run", batches.Load())
		}
	})
}

// waitConsumed waits until the ledger group committed n records of the
// scores topic.
func waitConsumed(t *testing.T, brokers []string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		off, err := committedOffset(ctx, brokers, Name, pipelines.TopicScores)
		cancel()
		if err == nil && off >= int64(n) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ledger did not consume %d score records", n)
}

func checkHead(t *testing.T, sum ledger.Summary, want *ledger.Book) {
	t.Helper()
	if sum.Entries != want.Size() || sum.Credits != want.Size() {
		t.Errorf("book has %d entries (%d credits), want %d credits", sum.Entries, sum.Credits, want.Size())
	}
	wh := want.Head()
	if sum.Head.Root != wh.Root || sum.Head.Hash() != wh.Hash() {
		t.Errorf("head %d %s, want %d %s", sum.Head.TreeSize, sum.Head.Root, want.Head().TreeSize, want.Head().Root)
	}
}

// TestStageDebitsEntriesAndReader covers requests (debit, duplicate,
// adjustment, a bad one), the entries topic's proofs and the proof API
// (services/ledger/proofs) following the blocks the stage wrote.
func TestStageDebitsEntriesAndReader(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	recs := scoreStream(t, 6, 1, 2)
	debit := ledger.Entry{Kind: ledger.KindDebit, ID: "req-1", Account: "acct-1", VehicleID: "veh-001", Amount: 5, Reason: "redeem", Partner: "fuelco", Item: "coffee", RedemptionID: "red-1", RequestedAtMs: 1_700_000_000_000}
	adj := ledger.Entry{Kind: ledger.KindAdjustment, ID: "req-2", Account: "acct-1", VehicleID: "veh-001", Amount: -3, Reason: "operator correction", Ref: "veh-001/1970-01-02", RequestedAtMs: 1_700_000_000_001}
	badRef := ledger.Entry{Kind: ledger.KindAdjustment, ID: "req-3", Account: "acct-1", Amount: 1, Reason: "x", Ref: "nope/1970-01-01"}
	kafkatest.Produce(t, brokers, recs...)
	stop := kafkatest.Run(t, runConfig(brokers, 100), newStage(t, stageConfig(t, brokers, 4)))
	waitBook(t, brokers, signer.Public(), 6) // the credits first: the adjustment refers to one
	recs = nil
	for _, e := range []ledger.Entry{debit, debit, adj, badRef} {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(e.Account), Value: enc(t, request(e))})
	}
	recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte("x"), Value: []byte("not avro")})
	kafkatest.Produce(t, brokers, recs...)
	sum := waitBook(t, brokers, signer.Public(), 8)
	if sum.Credits != 6 || sum.Debits != 1 || sum.Adjustments != 1 {
		t.Errorf("summary %+v, want 6 credits, 1 debit, 1 adjustment", sum)
	}
	dead := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 2, 20*time.Second)
	if len(dead) != 2 {
		t.Errorf("%d dead letters, want 2 (unknown ref, not avro)", len(dead))
	}
	stop()

	// Every entry record carries a proof that checks against its checkpoint.
	entries := kafkatest.WaitRecords(t, brokers, pipelines.TopicLedgerEntries, 8, 20*time.Second)
	if len(entries) != 8 {
		t.Fatalf("%d entry records, want 8", len(entries))
	}
	for _, rec := range entries {
		var m avro.LedgerEntry
		if err := schemas.SingleObject().Unmarshal(rec.Value, &m); err != nil {
			t.Fatal(err)
		}
		b := &ledger.Bundle{Entry: m.Entry, LeafIndex: uint64(m.LeafIndex), TreeSize: uint64(m.TreeSize),
			Root: fmt.Sprintf("%x", m.Root), Checkpoint: m.Checkpoint}
		for _, p := range m.Proof {
			b.Proof = append(b.Proof, fmt.Sprintf("%x", p))
		}
		e, err := ledger.CheckBundle(b, signer.Public())
		if err != nil {
			t.Errorf("entry %d: %v", b.LeafIndex, err)
		}
		if string(rec.Key) != e.Key() {
			t.Errorf("entry %d key %q, want %q", b.LeafIndex, rec.Key, e.Key())
		}
	}

	// The reader follows the topic and serves proofs.
	rd, err := proofs.NewServer(proofs.Config{Blocks: blocksOn(t, brokers), PublicKey: signer.Public(), Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reader: %v", err)
		}
	}()
	srv := httptest.NewServer(rd.Handler())
	defer srv.Close()
	deadline := time.Now().Add(20 * time.Second)
	var head proofs.Head
	for head.TreeSize < 8 && time.Now().Before(deadline) {
		getJSON(t, srv.URL+"/v1/ledger/head", http.StatusOK, &head)
		time.Sleep(50 * time.Millisecond)
	}
	if head.TreeSize != 8 || head.Root != sum.Head.Root.String() {
		t.Fatalf("head %+v, want size 8 root %s", head, sum.Head.Root)
	}
	var pj proofs.Proof
	getJSON(t, srv.URL+"/v1/ledger/entries/veh-003%2F1970-01-02/proof?tree_size=7", http.StatusOK, &pj)
	checkProofJSON(t, pj)
	getJSON(t, srv.URL+"/v1/ledger/entries/veh-003/1970-01-02/proof", http.StatusOK, &pj)
	checkProofJSON(t, pj)
	if pj.Checkpoint == "" || pj.TreeSize != 8 {
		t.Errorf("proof at head: %+v", pj)
	}
	var cj proofs.Consistency
	getJSON(t, srv.URL+"/v1/ledger/consistency?first=3&second=8", http.StatusOK, &cj)
	r1, _ := merkle.ParseHash(cj.Root1)
	r2, _ := merkle.ParseHash(cj.Root2)
	var cp []merkle.Hash
	for _, s := range cj.Proof {
		h, _ := merkle.ParseHash(s)
		cp = append(cp, h)
	}
	if err := merkle.VerifyConsistency(3, 8, cp, r1, r2); err != nil || r2 != sum.Head.Root {
		t.Errorf("consistency 3..8: %v", err)
	}
	for url, code := range map[string]int{
		"/v1/ledger/entries/nope/proof":                   http.StatusNotFound,
		"/v1/ledger/entries/req-1/proof?tree_size=x":      http.StatusBadRequest,
		"/v1/ledger/entries/req-1/proof?tree_size=99":     http.StatusNotFound,
		"/v1/ledger/entries/req-2/proof?tree_size=2":      http.StatusBadRequest,
		"/v1/ledger/consistency?first=5&second=2":         http.StatusBadRequest,
		"/v1/ledger/consistency":                          http.StatusBadRequest,
		"/v1/ledger/consistency?first=1&second=100":       http.StatusNotFound,
		"/v1/ledger/entries/veh-000%2F1970-01-02/nothing": http.StatusNotFound,
	} {
		var e map[string]string
		getJSON(t, srv.URL+url, code, &e)
		if e["error"] == "" {
			t.Errorf("%s: no error message", url)
		}
	}
}

func getJSON(t *testing.T, url string, code int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != code {
		t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, code)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Errorf("GET %s: %v", url, err)
	}
}

func checkProofJSON(t *testing.T, pj proofs.Proof) {
	t.Helper()
	leaf, _ := merkle.ParseHash(pj.LeafHash)
	root, _ := merkle.ParseHash(pj.Root)
	var proof []merkle.Hash
	for _, s := range pj.Proof {
		h, _ := merkle.ParseHash(s)
		proof = append(proof, h)
	}
	if err := merkle.VerifyInclusion(pj.LeafIndex, pj.TreeSize, leaf, proof, root); err != nil {
		t.Errorf("proof %+v: %v", pj, err)
	}
	if !strings.Contains(pj.ID, "/") {
		t.Errorf("id %q", pj.ID)
	}
}

func committedOffset(ctx context.Context, brokers []string, group, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		return 0, nil
	}
	return o.At, o.Err
}

// TestPoisonedBlocksTopic: the blocks topic holds the genuine book with a
// duplicate, a forged block, an out-of-order block, garbage, a signed
// header with other entries, a fork, and then a forged block at the next
// height. A new writer rebuilds the genuine book (counting each reason),
// appends its next block after the forged one, and a verifier and the
// proof server apply that genuine block: the forged block at its height
// did not stop it.
func TestPoisonedBlocksTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	p := ledgertest.Poison(t, signer)
	// A forged block at the next height (5), after everything.
	fb := ledger.NewBook()
	for _, b := range p.Genuine {
		if err := fb.Apply(b, signer.Public()); err != nil {
			t.Fatal(err)
		}
	}
	forgedNext, _, _, err := fb.Append(ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindAdjustment, ID: "gift-5", Account: "mallory", VehicleID: "v9", Amount: 1_000_000, Reason: "bonus", RequestedAtMs: 1_900_000_000_000},
	}}, 10, p.Forger)
	if err != nil {
		t.Fatal(err)
	}
	forged := forgedNext[0]
	last := p.Genuine[len(p.Genuine)-1].Header
	var recs []kafka.Output
	for i, b := range append(p.Records, forged) {
		v := []byte(fmt.Sprintf("garbage %d", i))
		if b != nil {
			v = enc(t, b.Avro())
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: blockKey(uint64(i)), Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
	bad := map[ledger.Reason]float64{ledger.ReasonForged: 1}
	for _, r := range p.Reasons {
		if r != "" {
			bad[r]++
		}
	}

	// The writer rebuilds the genuine book and counts each bad record.
	cfg := stageConfig(t, brokers, 10)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	st := newStage(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc, err := st.NewProcessor(ctx, pipelines.Task{Stage: Name})
	if err != nil {
		t.Fatalf("writer on the poisoned topic: %v", err)
	}
	if h := proc.(*Processor).Book().Head(); h != last {
		t.Errorf("writer's book head %+v, want the genuine %+v", h, last)
	}
	proc.(*Processor).Close()
	for _, r := range ledger.Reasons {
		if got := counter(t, reg, ledger.BadBlocksMetric, "reader", ReaderLabel, "reason", string(r)); got != bad[r] {
			t.Errorf("rebuild: %s counted %v, want %v", r, got, bad[r])
		}
	}

	// It appends the genuine block 5 after the forged one.
	adj := ledger.Entry{Kind: ledger.KindAdjustment, ID: "req-5", Account: "acct-3", VehicleID: "v3", Amount: 7, Reason: "goodwill", RequestedAtMs: 1_800_000_002_000}
	kafkatest.Produce(t, brokers, kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(adj.Account), Value: enc(t, request(adj))})
	stop := kafkatest.Run(t, runConfig(brokers, 100), st)
	defer stop()
	var sum ledger.Summary
	for sum.Entries <= last.TreeSize {
		select {
		case <-ctx.Done():
			t.Fatalf("blocks topic: %d entries, want %d", sum.Entries, last.TreeSize+1)
		case <-time.After(100 * time.Millisecond):
		}
		var badRecs *ledger.BadRecords
		sum, err = ledger.Verify(ctx, blocksOn(t, brokers), signer.Public())
		if !errors.As(err, &badRecs) || badRecs.Count != uint64(len(recs)-len(p.Genuine)) {
			t.Fatalf("verify: %v, want the %d bad records", err, len(recs)-len(p.Genuine))
		}
	}
	if sum.Head.Height != last.Height+1 || sum.Blocks != uint64(len(p.Genuine)+1) {
		t.Errorf("verified head %+v, %d blocks; want height %d", sum.Head, sum.Blocks, last.Height+1)
	}

	// The proof server applies it too.
	rd, err := proofs.NewServer(proofs.Config{Blocks: blocksOn(t, brokers), PublicKey: signer.Public(), Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rd.Run(rctx) }()
	for {
		if h, _ := rd.Head(ctx); h.TreeSize == sum.Head.TreeSize && h.Root == sum.Head.Root.String() {
			if h.BadRecords != uint64(len(recs)-len(p.Genuine)) {
				t.Errorf("reader: %d bad records, want %d", h.BadRecords, len(recs)-len(p.Genuine))
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("reader did not reach the writer's head")
		case <-time.After(50 * time.Millisecond):
		}
	}
	rcancel()
	if err := <-done; err != nil {
		t.Errorf("reader: %v", err)
	}
}

// counter is the value of the series of counter name with labels (name,
// value pairs) in reg, 0 if there is none.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
