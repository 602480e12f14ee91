package stage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/witness"
)

// The witness quorum before publication (cosign.go, publish.go) against
// real witnesses (services/witness) on real HTTP listeners.

// node is a witness behind a listener whose behaviour a test switches:
// up (the witness answers), silent (never answers), garbage (200 with a
// line that is no cosignature), down (the witness's process is gone:
// connection refused is simulated by a 503 from a dead front).
type node struct {
	t    testing.TB
	dir  string
	name string
	logs []string
	w    atomic.Pointer[witness.Witness]
	mode atomic.Int32
	srv  *httptest.Server
	hits atomic.Int64
	stop chan struct{}
}

const (
	modeUp int32 = iota
	modeSilent
	modeGarbage
	modeCrashAfterStore // checks, stores and cosigns, then dies before answering
)

func newNode(t testing.TB, i int, logKey string) *node {
	n := &node{t: t, stop: make(chan struct{}), dir: t.TempDir(), name: fmt.Sprintf("witness.test/w%d", i), logs: []string{logKey}}
	n.restart()
	n.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n.hits.Add(1)
		switch n.mode.Load() {
		case modeSilent: // reads the request, never answers
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-n.stop:
			}
		case modeGarbage:
			_, _ = rw.Write([]byte("— " + n.name + " AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"))
		case modeCrashAfterStore:
			body, _ := io.ReadAll(r.Body)
			_, _ = n.w.Load().AddCheckpoint(body) // the state is on disk
			if c, _, err := http.NewResponseController(rw).Hijack(); err == nil {
				_ = c.Close() // the process is gone: no answer
			}
		default:
			n.w.Load().Handler().ServeHTTP(rw, r)
		}
	}))
	t.Cleanup(func() { close(n.stop); n.srv.Close() })
	return n
}

// restart is a crash and restart of the witness process: a new Witness
// on the same state directory (whatever it stored before answering).
func (n *node) restart() {
	w, err := witness.New(witness.Config{Dir: n.dir, Name: n.name, Logs: n.logs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		n.t.Fatal(err)
	}
	n.w.Store(w)
}

// testLog is the ledger's book, grown block by block.
type testLog struct {
	t      testing.TB
	signer *ledger.Signer
	book   *ledger.Book
	blocks []*ledger.Block
	next   int
}

func newTestLog(t testing.TB, seed byte) *testLog {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(seed))
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, signer: s, book: ledger.NewBook()}
}

func (l *testLog) grow(n int, prefix string) *ledger.Block {
	l.t.Helper()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Clock: ledger.ClockEvent}
	for i := 0; i < n; i++ {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("%s%06d", prefix, l.next), 2, 10))
		l.next++
	}
	blks, _, _, err := l.book.Append(rel, n, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	l.blocks = append(l.blocks, blks...)
	return blks[len(blks)-1]
}

func (l *testLog) prove(first, second uint64) ([]merkle.Hash, error) {
	return l.book.Tree().ConsistencyProof(first, second)
}

func policyText(logKey string, k int, nodes ...*node) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "log %s\n", logKey)
	var names []string
	for i, n := range nodes {
		fmt.Fprintf(&b, "witness w%d %s %s\n", i+1, n.w.Load().VerifierKey(), n.srv.URL)
		names = append(names, fmt.Sprintf("w%d", i+1))
	}
	fmt.Fprintf(&b, "group g %d %s\nquorum g\n", k, strings.Join(names, " "))
	return []byte(b.String())
}

func setup(t testing.TB, k, n int) (*testLog, []*node, *ledger.Policy) {
	l := newTestLog(t, 1)
	var nodes []*node
	for i := range n {
		nodes = append(nodes, newNode(t, i+1, l.signer.VerifierKey()))
	}
	p, err := ledger.ParsePolicy(policyText(l.signer.VerifierKey(), k, nodes...))
	if err != nil {
		t.Fatal(err)
	}
	return l, nodes, p
}

func newCosigner(t testing.TB, p *ledger.Policy, reg prometheus.Registerer, tweak func(*stage.CosignConfig)) *stage.Cosigner {
	cfg := stage.CosignConfig{Policy: p, Timeout: 300 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond, Grace: time.Second,
		Registerer: reg, Logger: slog.New(slog.DiscardHandler)}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := stage.NewCosigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func refusals(t *testing.T, reg *prometheus.Registry, w, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "minecart_ledger_cosign_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["witness"] == w && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestCosignQuorum: three witnesses cosign; the note verifies against the
// policy; a silent witness times out and the other two still make the
// quorum; after a crash and restart it resumes from its stored state with
// a consistency proof; a ledger restarted with no memory of the witnesses
// resyncs on their 409s.
func TestCosignQuorum(t *testing.T) {
	l, nodes, p := setup(t, 2, 3)
	reg := prometheus.NewRegistry()
	c := newCosigner(t, p, reg, nil)
	ctx := context.Background()

	b1 := l.grow(4, "a")
	res := c.Cosign(ctx, b1.Checkpoint, b1.Header.TreeSize, l.prove)
	if !res.Quorum || strings.Join(res.Signers, ",") != "w1,w2,w3" {
		t.Fatalf("round 1: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	cp, signers, err := p.VerifyCosigned(string(res.Note), l.signer.Public())
	if err != nil || cp.Size != 4 || len(signers) != 3 {
		t.Fatalf("cosigned note: %v %v %v", cp, signers, err)
	}

	nodes[2].mode.Store(modeSilent)
	b2 := l.grow(3, "b")
	res = c.Cosign(ctx, b2.Checkpoint, b2.Header.TreeSize, l.prove)
	if !res.Quorum || strings.Join(res.Signers, ",") != "w1,w2" || !strings.HasPrefix(res.Refused["w3"], "timeout") {
		t.Fatalf("round 2 (w3 silent): quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	if got := refusals(t, reg, "w3", stage.RefusedTimeout); got != 2 {
		t.Errorf("w3 timeouts counted %v, want 2 (Attempts)", got)
	}

	// w3 crashes and restarts on its state: it holds size 4.
	nodes[2].restart()
	if st := nodes[2].w.Load().State(ledgertest.Origin); st == nil || st.Size != 4 {
		t.Fatalf("w3 state after restart: %+v", st)
	}
	nodes[2].mode.Store(modeUp)
	b3 := l.grow(2, "c")
	res = c.Cosign(ctx, b3.Checkpoint, b3.Header.TreeSize, l.prove)
	if !res.Quorum || len(res.Signers) != 3 {
		t.Fatalf("round 3: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	if got := refusals(t, reg, "w3", "409"); got != 0 {
		t.Errorf("w3 409s %v: the cosigner knew its size", got)
	}

	// A ledger restarted (a new Cosigner: old size 0 for everyone) is told
	// each witness's size by a 409 and sends the right proof.
	reg2 := prometheus.NewRegistry()
	c2 := newCosigner(t, p, reg2, nil)
	b4 := l.grow(5, "d")
	res = c2.Cosign(ctx, b4.Checkpoint, b4.Header.TreeSize, l.prove)
	if !res.Quorum || len(res.Signers) != 3 {
		t.Fatalf("round 4: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	for i, w := range []string{"w1", "w2", "w3"} {
		if got := refusals(t, reg2, w, "409"); got != 1 {
			t.Errorf("%s: %v 409s, want 1 (resync)", w, got)
		}
		if st := nodes[i].w.Load().State(ledgertest.Origin); st.Size != b4.Header.TreeSize {
			t.Errorf("%s holds size %d", w, st.Size)
		}
	}
}

// TestWitnessCrashMidCosigning: a witness stores the new checkpoint and
// dies before answering; the round does without it (quorum from the
// others); restarted on its state directory, it holds the size it never
// answered for, tells the next round so with a 409, and cosigns the next
// checkpoint from there.
func TestWitnessCrashMidCosigning(t *testing.T) {
	l, nodes, p := setup(t, 2, 3)
	reg := prometheus.NewRegistry()
	c := newCosigner(t, p, reg, nil)
	ctx := context.Background()
	b1 := l.grow(3, "a")
	if res := c.Cosign(ctx, b1.Checkpoint, 3, l.prove); !res.Quorum || len(res.Signers) != 3 {
		t.Fatalf("round 1: %v %v", res.Signers, res.Refused)
	}
	nodes[0].mode.Store(modeCrashAfterStore)
	b2 := l.grow(4, "b")
	res := c.Cosign(ctx, b2.Checkpoint, 7, l.prove)
	if !res.Quorum || strings.Join(res.Signers, ",") != "w2,w3" || !strings.HasPrefix(res.Refused["w1"], "network") {
		t.Fatalf("round 2 (w1 crashes after storing): %v %v", res.Signers, res.Refused)
	}
	nodes[0].restart()
	if st := nodes[0].w.Load().State(ledgertest.Origin); st == nil || st.Size != 7 {
		t.Fatalf("w1 after restart holds %+v, want size 7 (stored before the crash)", st)
	}
	nodes[0].mode.Store(modeUp)
	b3 := l.grow(2, "c")
	res = c.Cosign(ctx, b3.Checkpoint, 9, l.prove)
	if !res.Quorum || len(res.Signers) != 3 {
		t.Fatalf("round 3: %v %v", res.Signers, res.Refused)
	}
	if got := refusals(t, reg, "w1", "409"); got < 1 {
		t.Errorf("w1 409s %v: the cosigner should have learned its size from one", got)
	}
}

// TestCosignGarbageAndSkew: a witness answering garbage is a refusal
// ("garbage", retried, counted) and the others make the quorum; a
// cosignature stamped too far from the ledger's clock does not count.
func TestCosignGarbageAndSkew(t *testing.T) {
	l, nodes, p := setup(t, 2, 3)
	reg := prometheus.NewRegistry()
	c := newCosigner(t, p, reg, nil)
	nodes[0].mode.Store(modeGarbage)
	b := l.grow(3, "a")
	res := c.Cosign(context.Background(), b.Checkpoint, b.Header.TreeSize, l.prove)
	if !res.Quorum || strings.Join(res.Signers, ",") != "w2,w3" || !strings.HasPrefix(res.Refused["w1"], "garbage") {
		t.Fatalf("garbage w1: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	if got := refusals(t, reg, "w1", stage.RefusedGarbage); got != 2 {
		t.Errorf("w1 garbage refusals %v, want 2", got)
	}
	if strings.Contains(string(res.Note), "— witness.test/w1 ") {
		t.Errorf("garbage in the note:\n%s", res.Note)
	}

	// Clock skew: the ledger's clock 11 minutes ahead of the witnesses'
	// (MaxSkew 10m): every cosignature looks 11 minutes old.
	nodes[0].mode.Store(modeUp)
	for _, tc := range []struct {
		shift  time.Duration
		quorum bool
	}{{11 * time.Minute, false}, {-11 * time.Minute, false}, {9 * time.Minute, true}, {-9 * time.Minute, true}} {
		reg := prometheus.NewRegistry()
		c := newCosigner(t, p, reg, func(cfg *stage.CosignConfig) {
			cfg.Now = func() time.Time { return time.Now().Add(tc.shift) }
		})
		b := l.grow(1, "s")
		res := c.Cosign(context.Background(), b.Checkpoint, b.Header.TreeSize, l.prove)
		if res.Quorum != tc.quorum {
			t.Errorf("clock shifted %v: quorum %v, want %v (refused %v)", tc.shift, res.Quorum, tc.quorum, res.Refused)
		}
		if !tc.quorum && refusals(t, reg, "w1", stage.RefusedSkew) != 1 {
			t.Errorf("clock shifted %v: w1 skew refusals %v, want 1 (not retried)", tc.shift, refusals(t, reg, "w1", stage.RefusedSkew))
		}
	}
}

// TestSplitView: an operator holding the ledger key signs two books of
// the same size and shows one to w1 and w2 (while w3 is away), the other
// to everyone: the fork gets one cosignature, never the quorum, and w1
// and w2 keep evidence naming both checkpoints. A rewritten history (a
// larger tree that does not extend what they cosigned) gets none.
func TestSplitView(t *testing.T) {
	l, nodes, p := setup(t, 2, 3)
	c := newCosigner(t, p, prometheus.NewRegistry(), nil)
	ctx := context.Background()

	l.grow(3, "a")
	nodes[2].mode.Store(modeSilent)
	a := l.grow(3, "b") // the honest book, size 6
	res := c.Cosign(ctx, a.Checkpoint, 6, l.prove)
	if !res.Quorum {
		t.Fatalf("honest book: %v", res.Refused)
	}
	nodes[2].mode.Store(modeUp)

	// The fork: the same key, the same first block, other entries.
	fork := newTestLog(t, 1)
	fork.grow(3, "a")
	f := fork.grow(3, "x")
	if f.Header.TreeSize != 6 || f.Header.Root == a.Header.Root {
		t.Fatal("fork not a fork")
	}
	res = c.Cosign(ctx, f.Checkpoint, 6, fork.prove)
	if res.Quorum || strings.Join(res.Signers, ",") != "w3" {
		t.Fatalf("fork: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	for _, w := range []string{"w1", "w2"} {
		if !strings.HasPrefix(res.Refused[w], "422") {
			t.Errorf("fork: %s refused %q, want 422", w, res.Refused[w])
		}
	}
	if _, _, err := p.VerifyCosigned(string(res.Note), l.signer.Public()); !errors.Is(err, ledger.ErrQuorum) {
		t.Fatalf("fork note against the policy: %v, want ErrQuorum", err)
	}
	for _, n := range nodes[:2] {
		ev := evidence(t, n)
		if len(ev) != 1 {
			t.Fatalf("%s: %d evidence files", n.name, len(ev))
		}
		e, err := witness.ParseEvidence(ev[0])
		if err != nil {
			t.Fatal(err)
		}
		finding, err := ledger.CompareCheckpoints(l.signer.Public(), e.Cosigned, string(e.Request.Checkpoint))
		if err != nil || finding.Kind != ledger.SplitView || finding.Size != 6 {
			t.Fatalf("%s evidence: %+v %v", n.name, finding, err)
		}
	}

	// Rewritten history: a larger tree whose first 6 leaves are the
	// fork's; nobody that cosigned either size-6 tree accepts it.
	g := fork.grow(4, "y")
	res = c.Cosign(ctx, g.Checkpoint, 10, fork.prove)
	if res.Quorum || len(res.Signers) != 1 {
		// w3 cosigned the fork at 6, so it extends consistently for w3.
		t.Fatalf("rewritten history: quorum %v signers %v refused %v", res.Quorum, res.Signers, res.Refused)
	}
	for _, w := range []string{"w1", "w2"} {
		if !strings.HasPrefix(res.Refused[w], "422") {
			t.Errorf("rewritten history: %s refused %q, want 422", w, res.Refused[w])
		}
	}
	if ev := evidence(t, nodes[0]); len(ev) != 2 {
		t.Errorf("w1: %d evidence files, want 2 (same size, inconsistent)", len(ev))
	}
}

func evidence(t *testing.T, n *node) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.dir, "evidence", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// memFollower hands blocks to the publisher as a blocks topic would.
type memFollower struct {
	ch chan *ledger.Block
	// held are the blocks published before Follow started.
	held []*ledger.Block
}

func (m *memFollower) Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error {
	for _, b := range m.held {
		if err := fn(b); err != nil {
			return err
		}
	}
	caught()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-m.ch:
			if err := fn(b); err != nil {
				return err
			}
		}
	}
}

type memStore struct {
	mu    sync.Mutex
	sizes []uint64
	notes map[uint64][]byte
}

func (m *memStore) Store(_ context.Context, size uint64, note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sizes = append(m.sizes, size)
	m.notes[size] = note
	return nil
}

func (m *memStore) last() (uint64, []byte, []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sizes) == 0 {
		return 0, nil, nil
	}
	s := m.sizes[len(m.sizes)-1]
	return s, m.notes[s], append([]uint64(nil), m.sizes...)
}

// TestPublisherOutage: with two of three witnesses away nothing is
// published (the blocks keep coming and the publisher holds them all),
// quorum waits are counted; when one returns, the newest head is
// published with the quorum; published sizes only grow.
func TestPublisherOutage(t *testing.T) {
	l, nodes, p := setup(t, 2, 3)
	reg := prometheus.NewRegistry()
	fol := &memFollower{ch: make(chan *ledger.Block)}
	store := &memStore{notes: map[uint64][]byte{}}
	pub, err := stage.NewPublisher(stage.PublisherConfig{
		Blocks: fol, PublicKey: l.signer.Public(), Store: store, Retry: 20 * time.Millisecond, MaxRetry: 100 * time.Millisecond,
		Cosign:     stage.CosignConfig{Policy: p, Timeout: 200 * time.Millisecond, Attempts: 1, Grace: 500 * time.Millisecond},
		Registerer: reg, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	send := func(b *ledger.Block) {
		select {
		case fol.ch <- b:
		case <-time.After(10 * time.Second):
			t.Fatal("publisher does not follow")
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	send(l.grow(2, "a"))
	waitFor("first publication", func() bool { s, _, _ := store.last(); return s == 2 })

	nodes[1].mode.Store(modeSilent)
	nodes[2].mode.Store(modeSilent)
	for i := range 5 {
		send(l.grow(2, fmt.Sprintf("o%d-", i)))
	}
	waitFor("quorum waits", func() bool { return testutil.ToFloat64(gauge(t, reg, "minecart_ledger_quorum_waits_total")) >= 2 })
	if s, _, _ := store.last(); s != 2 {
		t.Fatalf("published size %d during the outage", s)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "minecart_ledger_unpublished_entries")); got != 10 {
		t.Errorf("unpublished entries %v, want 10", got)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "minecart_ledger_quorum_pending_since_seconds")); got <= 0 {
		t.Errorf("pending since %v", got)
	}

	nodes[2].mode.Store(modeUp)
	waitFor("publication after the outage", func() bool { s, _, _ := store.last(); return s == 12 })
	_, note, sizes := store.last()
	if _, signers, err := p.VerifyCosigned(string(note), l.signer.Public()); err != nil || strings.Join(signers, ",") != "w1,w3" {
		t.Fatalf("published after the outage: %v %v", signers, err)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i] < sizes[i-1] {
			t.Fatalf("published sizes go back: %v", sizes)
		}
	}
	if got := pub.Published(); got.Size != 12 {
		t.Errorf("Published() size %d", got.Size)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "minecart_ledger_quorum_pending_since_seconds")); got != 0 {
		t.Errorf("pending since %v after catching up", got)
	}
	// Publication lag: two publications, the second covering blocks that
	// waited through the outage (at least two rounds of 200ms timeouts).
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "minecart_ledger_publication_lag_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != uint64(len(sizes)) || h.GetSampleSum() < 0.4 {
				t.Errorf("publication lag: %d samples (want %d), sum %.3fs (want >= 0.4s)", h.GetSampleCount(), len(sizes), h.GetSampleSum())
			}
		}
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return gathered{reg, name}
}

// gathered is a Collector view of one single-series metric of reg.
type gathered struct {
	reg  *prometheus.Registry
	name string
}

func (g gathered) Describe(ch chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, v)
	}
}
