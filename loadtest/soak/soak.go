// Package soak is minecart's soak and scaling harness (issue 19 item 3).
// It runs the pipeline as separate processes with the chaos suite's
// topology (loadtest/chaos: `minecart broker`, `minecart clickhouse`, and
// every stage as N replicas from its own main in one consumer group, the
// device gateway in the harness itself on the simulation's clock), sends a
// simulated fleet through it as fast as it goes, and measures, without
// killing anything:
//
//   - every Interval, per process, its resident set and CPU time (read
//     from /proc, each process with its descendants), and per stage the
//     records consumed (its replicas' /metrics) and its consumer group's
//     lag (the broker's committed offsets against the high watermarks);
//   - events/s through each stage over the run;
//   - per simulated day, the time from the first time mark the gateway
//     wrote at or past the day's end plus scoring's grace (the moment the
//     day could close) to each of its credits being read, committed, from
//     the ledger entries topic (p50, p99, max);
//   - how every process exited once stopped with SIGTERM.
//
// Run is one such run; Report and ScaleReport format the tables that
// `make soak` and `make soak-scale` print and write (docs/scale.md).
package soak

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/chaos"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// Config is one soak run.
type Config struct {
	Vehicles, Days int
	Seed           uint64
	// Replicas is the number of processes of every stage (one consumer
	// group per stage).
	Replicas int
	// Interval between samples (default 10 s).
	Interval time.Duration
	// Dir holds the run's data directory, its log and its samples CSV.
	Dir  string
	Name string // the run's name in Dir (default "soak-<replicas>")
	// Bin is the `minecart` binary (chaos.Build), MainsDir the stages'
	// mains (chaos.BuildMains).
	Bin, MainsDir string
	// Kafka, ClickHouse and Gateway are fixed 127.0.0.1:port addresses
	// (empty: a free port of chaos.FreeAddr). The replicas' metrics
	// listeners always take free ports.
	Kafka, ClickHouse, Gateway string
	// Grace is scoring's grace (the scoring main's -grace, default 2h):
	// a day ends at its local midnight plus Grace.
	Grace time.Duration
	// Settle bounds the wait, after the fleet is sent, for every consumer
	// group to have no readable backlog for Quiet (default 30 min, 10 s).
	Settle, Quiet time.Duration
	// Progress receives a table row per sample (nil: none).
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("soak-%d", c.Replicas)
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Hour
	}
	if c.Settle == 0 {
		c.Settle = 30 * time.Minute
	}
	if c.Quiet == 0 {
		c.Quiet = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Result is what a run measured.
type Result struct {
	Config Config
	// Sent is the fleet upload's report; SentIn is how long it took from
	// the first delivery, Drained from then until the last consumer group
	// had no backlog (the settle check's quiet period taken off).
	Sent           loadtest.Report
	SentIn         time.Duration
	Drained        time.Duration
	Stages         []StageStat
	Procs          []ProcStat
	Days           []DayStat
	Credits        map[string]int64 // credit id (<vehicle>/<date>) -> points, as read from the entries topic
	CreditCopies   int              // credits read more than once (must be 0)
	Exits          []Exit
	Samples        int
	CSV, Log       string // the samples file, the processes' log
	Partitions     int    // of the telemetry topics
	MaxSampleError string // the last sampling error, if any
}

// StageStat is one stage's consumption over the run.
type StageStat struct {
	Stage    string
	In       float64       // records consumed, all replicas
	Active   time.Duration // from its first to its last sample with progress
	PeakLag  int64
	PeakRate float64 // records/s, best interval
}

// Rate is In over Active.
func (s StageStat) Rate() float64 {
	if s.Active <= 0 {
		return 0
	}
	return s.In / s.Active.Seconds()
}

// ProcStat is one process's resources over the run.
type ProcStat struct {
	Name    string
	PeakRSS int64
	CPU     float64       // CPU seconds at its last sample
	Wall    time.Duration // from the first sample to its last
}

// Cores is the CPU the process used on average.
func (p ProcStat) Cores() float64 {
	if p.Wall <= 0 {
		return 0
	}
	return p.CPU / p.Wall.Seconds()
}

// DayStat is the latency of one simulated day's credits: from the first
// time mark past the day's end plus grace to the credit read from the
// entries topic.
type DayStat struct {
	Date          string
	Credits       int
	P50, P99, Max time.Duration
}

// Exit is how a process ended.
type Exit struct {
	Name string
	Err  string // "": exit status 0
	// Early: it exited before the harness stopped it.
	Early bool
}

// Clean tells whether every process exited with status 0 when stopped.
func (r *Result) Clean() bool {
	for _, e := range r.Exits {
		if e.Err != "" || e.Early {
			return false
		}
	}
	return len(r.Exits) > 0
}

// mark is one time mark: its simulated intake time and when (wall clock)
// it was written.
type mark struct {
	sim  int64
	wall time.Time
}

// credit is one credit read from the entries topic.
type credit struct {
	id, date  string
	windowEnd int64
	points    int64
	at        time.Time
}

// Run runs the fleet through the topology once and measures it. The
// processes are stopped before it returns, also on errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	res := &Result{Config: cfg, Credits: map[string]int64{}, Partitions: pipelines.TelemetryPartitions}
	topo, err := chaos.NewTopology(cfg.Bin, cfg.MainsDir, cfg.Dir, cfg.Name,
		chaos.Fleet{Vehicles: cfg.Vehicles, Days: cfg.Days, Seed: cfg.Seed}, cfg.Replicas, 0)
	if err != nil {
		return nil, err
	}
	res.Log = topo.Log()
	if cfg.Kafka != "" || cfg.ClickHouse != "" {
		k, c := topo.Kafka, topo.ClickHouse
		if cfg.Kafka != "" {
			k = cfg.Kafka
		}
		if cfg.ClickHouse != "" {
			c = cfg.ClickHouse
		}
		topo.Endpoints = chaos.EndpointsFor(topo.Dir, k, c)
	}
	if cfg.Gateway != "" {
		topo.Gateway = cfg.Gateway
	}
	var (
		marksMu sync.Mutex
		marks   []mark
	)
	topo.OnMark = func(at time.Time) {
		marksMu.Lock()
		defer marksMu.Unlock()
		if n := len(marks); n == 0 || at.UnixMilli() > marks[n-1].sim {
			marks = append(marks, mark{at.UnixMilli(), time.Now()})
		}
	}
	closed := false
	defer func() {
		if !closed {
			topo.Close()
		}
	}()
	if err := topo.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the topology: %w (log %s)", err, topo.Log())
	}
	opts, err := topo.KafkaOpts()
	if err != nil {
		return nil, err
	}

	// The credits, read as they are published.
	cctx, stopCredits := context.WithCancel(ctx)
	defer stopCredits()
	creditsCh := make(chan []credit, 1)
	creditsErr := make(chan error, 1)
	go func() {
		cs, err := readCredits(cctx, opts)
		creditsCh <- cs
		creditsErr <- err
	}()

	// The samples.
	res.CSV = filepath.Join(cfg.Dir, cfg.Name+"-samples.csv")
	smp, err := newSampler(topo, opts, res.CSV, cfg.Progress)
	if err != nil {
		return nil, err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		smp.loop(sctx, cfg.Interval)
	}()
	stopSampler := func() {
		if sctx.Err() == nil {
			stopSampling()
			<-sampled
			smp.sample(ctx) // the last look, before anything stops
			smp.close()
		}
	}
	defer stopSampler()

	start := time.Now()
	smp.setStart(start)
	rep, err := topo.SendFleet(ctx)
	res.Sent, res.SentIn = rep, time.Since(start)
	if err != nil {
		return res, fmt.Errorf("sending the fleet: %w (log %s)", err, topo.Log())
	}
	fmt.Fprintf(cfg.Progress, "fleet sent in %v: %v\n", res.SentIn.Round(time.Millisecond), rep)
	// The settle check counts each backlog record by reading it: first
	// wait, with the broker's offsets alone, for the backlogs to be
	// nearly gone, so that it does not read millions of records a second
	// while a big fleet drains.
	if err := waitLowLag(ctx, smp.adm, 1000, cfg.Settle); err != nil {
		return res, err
	}
	if err := topo.WaitSettled(ctx, cfg.Quiet, cfg.Settle); err != nil {
		return res, err
	}
	res.Drained = time.Since(start) - cfg.Quiet
	stopSampler()
	res.Samples, res.Stages, res.Procs, res.MaxSampleError = smp.stats()

	// Stop the stages with SIGTERM, each as an orchestrator would.
	for _, r := range topo.Stages() {
		p := r.Proc()
		if p == nil {
			continue
		}
		early := false
		select {
		case <-p.Done():
			early = true
		default:
		}
		p.Stop(30 * time.Second)
		res.Exits = append(res.Exits, exitOf(r.Stage+" "+r.ID, p, early))
	}
	stopCredits()
	cs := <-creditsCh
	if err := <-creditsErr; err != nil {
		return res, err
	}
	closed = true
	topo.Close()
	res.Exits = append(res.Exits, exitOf("minecart broker", topo.Broker(), false), exitOf("minecart clickhouse", topo.ClickHouseProc(), false))

	marksMu.Lock()
	res.Days = dayStats(cs, marks, cfg.Grace)
	marksMu.Unlock()
	for _, c := range cs {
		if _, dup := res.Credits[c.id]; dup {
			res.CreditCopies++
		}
		res.Credits[c.id] = c.points
	}
	return res, nil
}

// waitLowLag waits until the stages' consumer groups together lag at
// most limit records behind the high watermarks (markers included), or
// fails after timeout.
func waitLowLag(ctx context.Context, adm *kadm.Client, limit int64, timeout time.Duration) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		gl, err := adm.Lag(tctx, chaos.Stages...)
		if err == nil {
			var total int64
			for _, l := range gl {
				if l.Error() == nil {
					total += max(l.Lag.Total(), 0)
				}
			}
			if total <= limit {
				return nil
			}
		}
		select {
		case <-tctx.Done():
			return fmt.Errorf("the stages' lag did not fall under %d records within %v", limit, timeout)
		case <-time.After(time.Second):
		}
	}
}

func exitOf(name string, p *chaos.Proc, early bool) Exit {
	e := Exit{Name: name, Early: early}
	if p == nil {
		e.Err = "never started"
		return e
	}
	<-p.Done()
	if err := p.Err(); err != nil {
		e.Err = err.Error()
	}
	return e
}

// readCredits follows the entries topic with read_committed until ctx is
// done and returns every credit with the moment it was read.
func readCredits(ctx context.Context, opts []kgo.Opt) ([]credit, error) {
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(pipelines.TopicLedgerEntries),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	serde := schemas.SingleObject()
	var out []credit
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return out, nil
		}
		now := time.Now()
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("reading %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return out, ferr
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			if isCheckpoint(r) {
				continue // the publisher's cosigned checkpoint among the entries
			}
			var le avro.LedgerEntry
			if err := serde.Unmarshal(r.Value, &le); err != nil {
				return out, fmt.Errorf("entries offset %d: %w", r.Offset, err)
			}
			e, err := ledger.DecodeEntry(le.Entry)
			if err != nil {
				return out, fmt.Errorf("entries offset %d: %w", r.Offset, err)
			}
			if e.Kind != ledger.KindCredit {
				continue
			}
			out = append(out, credit{id: e.ID, date: e.Date, windowEnd: e.WindowEndMs, points: e.Points, at: now})
		}
	}
}

// dayStats groups the credits by date: each credit's latency runs from
// the first mark at or past its window end plus grace. A credit read
// before that mark (the day closed on the stages' idle close) counts as
// zero.
func dayStats(cs []credit, marks []mark, grace time.Duration) []DayStat {
	byDate := map[string][]time.Duration{}
	for _, c := range cs {
		due := c.windowEnd + grace.Milliseconds()
		i := sort.Search(len(marks), func(i int) bool { return marks[i].sim >= due })
		var lat time.Duration
		if i < len(marks) {
			lat = max(c.at.Sub(marks[i].wall), 0)
		}
		byDate[c.date] = append(byDate[c.date], lat)
	}
	var out []DayStat
	for d, ls := range byDate {
		sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
		out = append(out, DayStat{Date: d, Credits: len(ls), P50: quantile(ls, 0.50), P99: quantile(ls, 0.99), Max: ls[len(ls)-1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Date < out[j].Date })
	return out
}

// quantile of sorted ls, nearest rank.
func quantile(ls []time.Duration, q float64) time.Duration {
	if len(ls) == 0 {
		return 0
	}
	i := int(q*float64(len(ls))+0.999999) - 1
	return ls[min(max(i, 0), len(ls)-1)]
}

// sampler takes the periodic samples of a run.
type sampler struct {
	topo *chaos.Topology
	adm  *kadm.Client
	cl   *kgo.Client
	out  io.Writer
	f    *os.File
	w    *csv.Writer
	self int
	// selfCPU is the harness's CPU time when the run began: the harness
	// (a test binary) may run several runs.
	selfCPU float64
	start   time.Time

	mu      sync.Mutex
	n       int
	last    time.Time
	prevIn  map[string]float64
	stages  map[string]*StageStat
	first   map[string]time.Duration // first sample with progress
	lastAt  map[string]time.Duration // last sample with progress
	procs   map[string]*ProcStat
	order   []string
	lastErr string
}

func newSampler(topo *chaos.Topology, opts []kgo.Opt, path string, out io.Writer) (*sampler, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		cl.Close()
		return nil, err
	}
	s := &sampler{topo: topo, cl: cl, adm: kadm.NewClient(cl), out: out, f: f, w: csv.NewWriter(f), self: os.Getpid(),
		prevIn: map[string]float64{}, stages: map[string]*StageStat{}, first: map[string]time.Duration{}, lastAt: map[string]time.Duration{},
		procs: map[string]*ProcStat{}, start: time.Now()}
	if _, u, err := readProc(s.self); err == nil {
		s.selfCPU = u.CPU
	}
	for _, st := range chaos.Stages {
		s.stages[st] = &StageStat{Stage: st}
	}
	// Long format: one row per (sample, subject, metric).
	if err := s.w.Write([]string{"t_s", "subject", "metric", "value"}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sampler) setStart(t time.Time) {
	s.mu.Lock()
	s.start = t
	s.mu.Unlock()
}

func (s *sampler) loop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sample(ctx)
		}
	}
}

func (s *sampler) close() {
	s.w.Flush()
	s.f.Close()
	s.cl.Close()
}

// procs are the processes of the run by name: the harness (the gateway
// and the fleet simulator), the broker, ClickHouse and every replica.
func (s *sampler) processes() (names []string, pids map[string]int) {
	pids = map[string]int{"harness (gateway)": s.self}
	names = []string{"harness (gateway)"}
	if b := s.topo.Broker(); b != nil {
		pids["minecart broker"] = b.Cmd.Process.Pid
		names = append(names, "minecart broker")
	}
	if c := s.topo.ClickHouseProc(); c != nil {
		pids["minecart clickhouse"] = c.Cmd.Process.Pid
		names = append(names, "minecart clickhouse")
	}
	for _, r := range s.topo.Stages() {
		if p := r.Proc(); p != nil {
			n := r.Stage + " " + r.ID[strings.LastIndexByte(r.ID, '-')+1:]
			pids[n] = p.Cmd.Process.Pid
			names = append(names, n)
		}
	}
	return names, pids
}

// sample takes one sample: /proc, every replica's /metrics, the groups'
// lag and the raw topic's end offsets.
func (s *sampler) sample(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	t := now.Sub(s.start)
	ts := strconv.FormatFloat(t.Seconds(), 'f', 1, 64)
	row := func(subject, metric string, v float64) {
		_ = s.w.Write([]string{ts, subject, metric, strconv.FormatFloat(v, 'f', -1, 64)})
	}
	dt := now.Sub(s.last).Seconds()
	if s.last.IsZero() {
		dt = 0
	}
	s.last = now
	s.n++

	// Processes.
	names, pids := s.processes()
	pt, err := readProcs()
	if err != nil {
		s.lastErr = err.Error()
	}
	var rss []string
	for _, n := range names {
		if pt == nil {
			break
		}
		self := n == "harness (gateway)"
		u := pt.tree(pids[n], self)
		if self {
			u.CPU -= s.selfCPU
		}
		ps := s.procs[n]
		if ps == nil {
			ps = &ProcStat{Name: n}
			s.procs[n] = ps
			s.order = append(s.order, n)
		}
		if u.RSS == 0 && u.CPU == 0 {
			continue // gone
		}
		ps.PeakRSS = max(ps.PeakRSS, u.RSS)
		if u.CPU >= ps.CPU {
			ps.CPU = u.CPU
		}
		ps.Wall = t
		row(n, "rss_mib", float64(u.RSS)/(1<<20))
		row(n, "cpu_s", u.CPU)
		rss = append(rss, fmt.Sprintf("%s %dM", shortName(n), u.RSS>>20))
	}

	// Records consumed per stage, from the replicas' metrics.
	in := map[string]float64{}
	for _, r := range s.topo.Stages() {
		m, err := chaos.Scrape(ctx, r.Metrics)
		if err != nil {
			continue // between lives, or busy: the next sample sees the counter
		}
		in[r.Stage] += m.Sum("minecart_pipeline_records_in_total", "stage="+r.Stage)
	}
	// Lag per consumer group (the group is the stage's name).
	lag := map[string]int64{}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if gl, err := s.adm.Lag(lctx, chaos.Stages...); err == nil {
		for g, l := range gl {
			if l.Error() == nil {
				lag[g] = l.Lag.Total()
			}
		}
	} else {
		s.lastErr = err.Error()
	}
	var raw int64
	if ends, err := s.adm.ListEndOffsets(lctx, pipelines.TopicTelemetryRaw); err == nil {
		ends.Each(func(o kadm.ListedOffset) { raw += max(o.Offset, 0) })
	}
	cancel()
	row("telemetry.raw", "end_offsets", float64(raw))
	var cols []string
	for _, st := range chaos.Stages {
		ss := s.stages[st]
		v := max(in[st], ss.In) // a scrape that failed keeps the last value
		rate := 0.0
		if dt > 0 {
			rate = (v - s.prevIn[st]) / dt
		}
		if v > s.prevIn[st] {
			if _, ok := s.first[st]; !ok {
				s.first[st] = t - time.Duration(dt*float64(time.Second))
			}
			s.lastAt[st] = t
		}
		s.prevIn[st] = v
		ss.In = v
		ss.PeakLag = max(ss.PeakLag, lag[st])
		ss.PeakRate = max(ss.PeakRate, rate)
		row(st, "records_in", v)
		row(st, "records_per_s", rate)
		row(st, "lag", float64(lag[st]))
		cols = append(cols, fmt.Sprintf("%s %.0f/s lag %d", st, rate, lag[st]))
	}
	s.w.Flush()
	fmt.Fprintf(s.out, "t=%5.0fs raw %d | %s | rss %s\n", t.Seconds(), raw, strings.Join(cols, ", "), strings.Join(rss, " "))
}

func shortName(n string) string {
	return strings.NewReplacer("minecart ", "", "harness (gateway)", "harness").Replace(n)
}

func (s *sampler) stats() (int, []StageStat, []ProcStat, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st []StageStat
	for _, name := range chaos.Stages {
		ss := *s.stages[name]
		if f, ok := s.first[name]; ok {
			ss.Active = s.lastAt[name] - f
		}
		st = append(st, ss)
	}
	var ps []ProcStat
	for _, n := range s.order {
		ps = append(ps, *s.procs[n])
	}
	return s.n, st, ps, s.lastErr
}

// isCheckpoint reports whether r is a cosigned checkpoint record (its
// minecart-record header, pipelines.IsCheckpointRecord), tested before
// decoding.
func isCheckpoint(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == pipelines.HeaderRecord {
			return string(h.Value) == pipelines.RecordLedgerCheckpoint
		}
	}
	return false
}
