package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// Stages are the transactional stages whose counters the suite reads.
var Stages = []string{"ingest", "scoring", "ledger", "settlement", "sink"}

// Fleet is the simulated fleet of a run.
type Fleet struct {
	Vehicles, Days int
	Seed           uint64
}

// Pipeline is one `minecart run` data directory and its addresses, kept
// across restarts.
type Pipeline struct {
	Bin  string
	Dir  string
	HTTP string
	Endpoints
	Fleet Fleet
	logs  string
	epMu  sync.Mutex // guards Endpoints against the watchers' reads (refresh writes it)
}

// NewPipeline makes a data directory under root with fresh ports.
func NewPipeline(bin, root, name string, fl Fleet) (*Pipeline, error) {
	p := &Pipeline{Bin: bin, Dir: filepath.Join(root, name), Fleet: fl}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	var addrs [3]string
	for i := range addrs {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	p.HTTP = addrs[1]
	p.Endpoints = EndpointsFor(p.Dir, addrs[0], addrs[2])
	p.logs = filepath.Join(root, name+".log")
	return p, nil
}

// refresh reads the endpoints again: `minecart run` may write credentials
// into its data directory when it starts (EndpointsFor).
func (p *Pipeline) refresh() {
	e := EndpointsFor(p.Dir, p.Kafka, p.ClickHouse)
	p.epMu.Lock()
	p.Endpoints = e
	p.epMu.Unlock()
}

// endpoints is a copy of the endpoints, safe beside refresh.
func (p *Pipeline) endpoints() Endpoints {
	p.epMu.Lock()
	defer p.epMu.Unlock()
	return p.Endpoints
}

// Log is the file the pipeline's processes write to.
func (p *Pipeline) Log() string { return p.logs }

// StartRun starts `minecart run` on the pipeline (--once when once).
func (p *Pipeline) StartRun(once bool) (*Proc, error) {
	args := []string{"run", "--vehicles", strconv.Itoa(p.Fleet.Vehicles), "--days", strconv.Itoa(p.Fleet.Days),
		"--seed", strconv.FormatUint(p.Fleet.Seed, 10), "--data-dir", p.Dir,
		"--kafka-addr", p.Kafka, "--http-addr", p.HTTP, "--clickhouse-addr", p.ClickHouse}
	if once {
		args = append(args, "--once")
	}
	return Start("minecart run", p.Bin, p.logs, nil, args...)
}

// Watch follows a process's /metrics while it lives.
type Watch struct {
	mu          sync.Mutex
	start       time.Time
	firstCommit time.Duration // restart to the first committed transaction of any stage
	caughtUp    time.Duration // restart to the first moment, after a commit, no consumer group has a readable backlog
	last        Metrics
	done        chan struct{}
	onScrape    func(Metrics)
}

// WatchProc scrapes http://addr/metrics every 200ms until p exits and,
// given a broker (e != nil: it returns the current endpoints), asks it after the first commit, every
// second, whether every consumer group has caught up.
func WatchProc(p *Proc, addr string, e func() Endpoints, onScrape func(Metrics)) *Watch {
	w := &Watch{start: p.Started, done: make(chan struct{}), onScrape: onScrape}
	if e != nil {
		go func() {
			for {
				select {
				case <-p.Done():
					return
				case <-time.After(time.Second):
				}
				w.mu.Lock()
				fc := w.firstCommit
				w.mu.Unlock()
				if fc == 0 {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				lags, err := GroupLags(ctx, e())
				cancel()
				if err == nil && len(Behind(lags)) == 0 {
					w.mu.Lock()
					w.caughtUp = time.Since(w.start)
					w.mu.Unlock()
					return
				}
			}
		}()
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.Done():
				return
			case <-tick.C:
			}
			m, err := Scrape(context.Background(), addr)
			if err != nil {
				continue
			}
			now := time.Since(w.start)
			w.mu.Lock()
			w.last = m
			// A commit: a stage's transaction, or a sink's write (it
			// commits its offsets after each).
			if w.firstCommit == 0 && m.Sum("minecart_pipeline_transactions_total", "result=committed")+m.Sum("minecart_sink_writes_total", "result=ok") > 0 {
				w.firstCommit = now
			}
			w.mu.Unlock()
			if w.onScrape != nil {
				w.onScrape(m)
			}
		}
	}()
	return w
}

// ScrapeNow scrapes addr at once: a last look just before a kill.
func (w *Watch) ScrapeNow(addr string) {
	if m, err := Scrape(context.Background(), addr); err == nil {
		w.mu.Lock()
		w.last = m
		w.mu.Unlock()
	}
}

// Stats returns what the watch saw; wait for the process first.
func (w *Watch) Stats() (firstCommit, caughtUp time.Duration, last Metrics) {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstCommit, w.caughtUp, w.last
}

// Last is the latest scrape.
func (w *Watch) Last() Metrics {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Life is one process lifetime of a scenario: when it was killed (0: ran
// to its end), how long it took to commit again and to catch up, and what
// each stage consumed.
type Life struct {
	KilledAt    time.Duration
	FirstCommit time.Duration
	CaughtUp    time.Duration
	Lived       time.Duration
	In          map[string]float64
}

func (l Life) String() string {
	cu := "not caught up"
	if l.CaughtUp > 0 {
		cu = fmt.Sprintf("caught up %v", l.CaughtUp.Round(10*time.Millisecond))
	}
	s := fmt.Sprintf("first commit %v, %s", l.FirstCommit.Round(10*time.Millisecond), cu)
	if l.KilledAt > 0 {
		return fmt.Sprintf("killed at %v: %s", l.KilledAt.Round(10*time.Millisecond), s)
	}
	return fmt.Sprintf("ran %v: %s", l.Lived.Round(10*time.Millisecond), s)
}

// Finished is a run that ended: its summary lines and lifetime.
type Finished struct {
	Summary []string
	Life    Life
	// Sent is when (since the start) the run had sent the whole fleet.
	Sent time.Duration
}

// RunToEnd runs `minecart run --once` to its end; if it does not end
// within timeout it is killed and the error names the stages that did
// not settle, with their lag (read from the broker's group offsets and
// from the stages' metrics).
func (p *Pipeline) RunToEnd(ctx context.Context, timeout time.Duration) (*Finished, error) {
	proc, err := p.StartRun(true)
	if err != nil {
		return nil, err
	}
	w := WatchProc(proc, p.HTTP, p.endpoints, nil)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = proc.Wait(tctx)
	if tctx.Err() != nil {
		stuck := p.Stuck(ctx, w.Last())
		proc.Kill()
		return nil, fmt.Errorf("minecart run --once did not settle within %v (log %s): %s", timeout, p.logs, stuck)
	}
	fc, cu, last := w.Stats()
	if err != nil {
		return nil, fmt.Errorf("minecart run --once: %w (log %s)", err, p.logs)
	}
	sent, _ := proc.LineAt("simulation sent")
	return &Finished{Summary: proc.Lines(), Sent: sent, Life: Life{FirstCommit: fc, CaughtUp: cu, Lived: time.Since(proc.Started), In: last.By("minecart_pipeline_records_in_total", "stage")}}, nil
}

// Stuck describes why a live pipeline has not settled: every consumer
// group with a lag (from the broker) and every stage's counters.
func (p *Pipeline) Stuck(ctx context.Context, m Metrics) string {
	p.refresh()
	var parts []string
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	gl, err := GroupLags(ctx, p.Endpoints)
	if err != nil {
		parts = append(parts, "group lags unavailable: "+err.Error())
	}
	lags := Behind(gl)
	for _, g := range keys(lags) {
		parts = append(parts, fmt.Sprintf("stage %s stuck: lag %s", g, lags[g]))
	}
	if len(lags) == 0 && err == nil {
		parts = append(parts, "no consumer group lags behind")
	}
	in := m.By("minecart_pipeline_records_in_total", "stage")
	lag := m.By("minecart_pipeline_consumer_lag", "stage")
	var st []string
	for _, s := range Stages {
		st = append(st, fmt.Sprintf("%s in %.0f lag %.0f commits %.0f tasks restored %.0f", s, in[s], lag[s],
			m.Sum("minecart_pipeline_transactions_total", "stage="+s, "result=committed"),
			m.Sum("minecart_pipeline_restore_seconds_count", "stage="+s)))
	}
	parts = append(parts, "metrics: "+strings.Join(st, "; "))
	if rt := m.Sum("minecart_ledger_released_through_ms"); rt > 0 {
		parts = append(parts, "ledger released through "+time.UnixMilli(int64(rt)).UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, "; ")
}

// PartLag is one partition a consumer group has not fully committed.
type PartLag struct {
	Topic     string
	Partition int32
	Commit    int64 // the group's committed offset
	End       int64 // the high watermark
	Readable  int64 // committed records in [Commit, End): the real backlog
}

// GroupLags asks the broker, for every consumer group, which partitions
// its committed offsets leave behind the high watermark, and how many
// records there are readable with read_committed: a transactional tail
// leaves a commit or abort marker (and aborted records) that no consumer
// ever reads, so End - Commit alone overstates the backlog. The count
// uses the runtime's kafka.Reader (exact, and it never waits for a record
// that cannot come); the results themselves are read with a plain
// franz-go consumer (ReadTopic).
func GroupLags(ctx context.Context, e Endpoints) (map[string][]PartLag, error) {
	opts, err := e.KafkaOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	lags, err := adm.Lag(ctx, groups.Groups()...)
	if err != nil {
		return nil, err
	}
	out := map[string][]PartLag{}
	var rd *kafka.Reader
	for g, gl := range lags {
		if gl.Error() != nil {
			return nil, fmt.Errorf("lag of group %s: %w", g, gl.Error())
		}
		for _, l := range gl.Lag.Sorted() {
			if l.Lag <= 0 {
				continue
			}
			pl := PartLag{Topic: l.Topic, Partition: l.Partition, Commit: max(l.Commit.At, 0), End: l.End.Offset}
			// Count the committed records in [Commit, End) with the
			// runtime's bounded read, which ends at the fetch position
			// (past markers and aborted records) instead of waiting for a
			// record that may never come.
			if rd == nil {
				if rd, err = kafka.NewReader(kafka.Config{Brokers: []string{e.Kafka}, ClientOptions: opts[1:], Logger: slog.New(slog.DiscardHandler)}); err != nil {
					return nil, err
				}
				defer rd.Close()
			}
			err := rd.Read(ctx, pl.Topic, pl.Partition, pl.Commit, pl.End, func(r pipelines.Record) error {
				// A gateway's time marks keep coming while it runs, and a
				// sink that skips them commits past them only with its
				// next row: they are no backlog.
				if !pipelines.IsMark(&r) {
					pl.Readable++
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("group %s: reading %s/%d from %d to %d: %w", g, pl.Topic, pl.Partition, pl.Commit, pl.End, err)
			}
			out[g] = append(out[g], pl)
		}
	}
	return out, nil
}

// RawLag is a group's high watermarks minus its committed offsets,
// summed (commit markers included: cheap, for watching a backlog grow).
func RawLag(ctx context.Context, e Endpoints, group string) (int64, error) {
	opts, err := e.KafkaOpts()
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	lags, err := kadm.NewClient(cl).Lag(ctx, group)
	if err != nil {
		return 0, err
	}
	return lags[group].Lag.Total(), nil
}

// Behind returns the groups with a readable backlog, formatted:
// group -> "N (topic/partition: n committed C of end E, ...)".
func Behind(lags map[string][]PartLag) map[string]string {
	out := map[string]string{}
	for g, ls := range lags {
		var parts []string
		var total int64
		for _, l := range ls {
			if l.Readable > 0 {
				total += l.Readable
				parts = append(parts, fmt.Sprintf("%s/%d: %d (committed %d, end %d)", l.Topic, l.Partition, l.Readable, l.Commit, l.End))
			}
		}
		if total > 0 {
			out[g] = fmt.Sprintf("%d records (%s)", total, strings.Join(parts, ", "))
		}
	}
	return out
}

// Serve starts `minecart broker` and `minecart clickhouse` on the
// pipeline's data directory and addresses (after its run ended), to read
// its results; stop them with the returned function. skipCH: ClickHouse is
// already served.
func (p *Pipeline) Serve(ctx context.Context, skipCH bool) (stop func(), err error) {
	p.refresh()
	var procs []*Proc
	stop = func() {
		for _, pr := range procs {
			pr.Stop(10 * time.Second)
		}
	}
	b, err := Start("minecart broker", p.Bin, p.logs, nil, p.BrokerArgs(filepath.Join(p.Dir, "kafka"))...)
	if err != nil {
		return nil, err
	}
	procs = append(procs, b)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := b.WaitLine(wctx, "kafka listening"); err != nil {
		stop()
		return nil, err
	}
	if !skipCH {
		ch, err := p.StartClickHouse(wctx)
		if err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, ch)
	}
	return stop, nil
}

// StartClickHouse starts `minecart clickhouse` on the pipeline's data
// directory and address and waits until it answers.
func (p *Pipeline) StartClickHouse(ctx context.Context) (*Proc, error) {
	ch, err := Start("minecart clickhouse", p.Bin, p.logs, nil, p.ClickHouseArgs(filepath.Join(p.Dir, "clickhouse"))...)
	if err != nil {
		return nil, err
	}
	if _, err := ch.WaitLine(ctx, "listening"); err != nil {
		ch.Kill()
		return nil, err
	}
	p.refresh() // a new ClickHouse generates its users into its directory
	for {
		if _, err := Query(ctx, p.Endpoints, "SELECT 1"); err == nil {
			return ch, nil
		}
		select {
		case <-ctx.Done():
			ch.Kill()
			return nil, fmt.Errorf("clickhouse on %s does not answer: %w", p.ClickHouse, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Snapshot serves the finished pipeline's data and reads it back.
func (p *Pipeline) Snapshot(ctx context.Context, summary []string, chServed bool) (*Snapshot, error) {
	stop, err := p.Serve(ctx, chServed)
	if err != nil {
		return nil, err
	}
	defer stop()
	return ReadSnapshot(ctx, p.Bin, p.Dir, p.Endpoints, summary)
}

// KillResult is what the kill scenario measured.
type KillResult struct {
	Lives       []Life // one per kill, then the final run
	Reprocessed map[string]float64
}

// KillRun runs the pipeline, kills the whole `minecart run` (SIGKILL to
// its process group: the run and its ClickHouse) kills times, the i-th
// at moment(i) after its start, restarts it on the same data directory
// each time, and finally runs it to its end. baseIn is what each stage
// consumed in an uninterrupted run: the excess is the records
// reprocessed.
func (p *Pipeline) KillRun(ctx context.Context, kills int, moment func(i int) time.Duration, timeout time.Duration, baseIn map[string]float64, logf func(string, ...any)) (*KillResult, *Finished, error) {
	res := &KillResult{Reprocessed: map[string]float64{}}
	total := map[string]float64{}
	for i := range kills {
		at := moment(i)
		// Not --once: a run that settled keeps serving, so every kill
		// happens.
		proc, err := p.StartRun(false)
		if err != nil {
			return res, nil, err
		}
		w := WatchProc(proc, p.HTTP, p.endpoints, nil)
		select {
		case <-time.After(time.Until(proc.Started.Add(at))):
		case <-proc.Done():
			return res, nil, fmt.Errorf("kill %d: the run failed (%v) before its kill at %v (log %s)", i+1, proc.Err(), at, p.logs)
		case <-ctx.Done():
			proc.Kill()
			return res, nil, ctx.Err()
		}
		w.ScrapeNow(p.HTTP)
		proc.Kill()
		fc, cu, last := w.Stats()
		l := Life{KilledAt: at, FirstCommit: fc, CaughtUp: cu, Lived: at, In: last.By("minecart_pipeline_records_in_total", "stage")}
		res.Lives = append(res.Lives, l)
		for s, v := range l.In {
			total[s] += v
		}
		logf("kill %d/%d: %s", i+1, kills, l)
	}
	fin, err := p.RunToEnd(ctx, timeout)
	if err != nil {
		return res, nil, err
	}
	res.Lives = append(res.Lives, fin.Life)
	logf("final run: %s", fin.Life)
	for s, v := range fin.Life.In {
		total[s] += v
	}
	for s, v := range total {
		res.Reprocessed[s] = v - baseIn[s]
	}
	return res, fin, nil
}

// Percentiles returns the median and the worst of ds.
func Percentiles(ds []time.Duration) (median, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)-1]
}

// childOf finds the process whose parent is pid and whose command line
// contains word.
func childOf(pid int, word string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat)[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), word) {
			return cpid, nil
		}
	}
	return 0, fmt.Errorf("no child of %d running %q", pid, word)
}

// ClickHouseFault is what one ClickHouse outage cost.
type ClickHouseFault struct {
	Mode          string        // "kill" or "stop"
	Outage        time.Duration // how long ClickHouse was away
	MaxSinkLag    int64         // the sink's largest backlog in Kafka (from the broker) meanwhile
	WriteErrors   float64       // failed sink writes during the outage and the recovery
	ResumeAfter   time.Duration // ClickHouse back to the next row inserted (0: none needed)
	CaughtUpAfter time.Duration // ClickHouse back to the sink's group without a backlog
}

func (f ClickHouseFault) String() string {
	return fmt.Sprintf("%s for %v: sink backlog up to %d records (held in Kafka), %.0f failed writes, first row %v and caught up %v after ClickHouse came back",
		f.Mode, f.Outage, f.MaxSinkLag, f.WriteErrors, f.ResumeAfter.Round(10*time.Millisecond), f.CaughtUpAfter.Round(10*time.Millisecond))
}

// ClickHouseRun is a run with ClickHouse outages.
type ClickHouseRun struct {
	Faults  []ClickHouseFault
	Summary []string
	served  *Proc // the ClickHouse the scenario started after a kill
}

// Served tells whether the scenario left its own ClickHouse serving the
// pipeline's directory (stop it with Close after reading).
func (r *ClickHouseRun) Served() bool { return r != nil && r.served != nil }

// Close stops the ClickHouse the scenario started, if any.
func (r *ClickHouseRun) Close() {
	if r.Served() {
		r.served.Stop(10 * time.Second)
	}
}

// RunClickHouseFaults runs the pipeline (serving, not --once) and, once
// the sink has inserted its first rows, takes ClickHouse away once per
// mode: "kill" (SIGKILL, then a new `minecart clickhouse` on the same
// directory and address after outage) or "stop" (SIGSTOP, SIGCONT after
// outage: connections hang rather than fail). After each it waits for the
// sink's group to have no backlog; at the end for the summary and the
// sink again, then stops the run (SIGTERM).
func (p *Pipeline) RunClickHouseFaults(ctx context.Context, modes []string, outage, timeout time.Duration, logf func(string, ...any)) (*ClickHouseRun, error) {
	res := &ClickHouseRun{}
	proc, err := p.StartRun(false)
	if err != nil {
		return nil, err
	}
	defer proc.Stop(20 * time.Second)
	w := WatchProc(proc, p.HTTP, nil, nil)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows := func() float64 { return w.Last().Sum("minecart_sink_inserted_rows_total") }
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-proc.Done():
			return fmt.Errorf("minecart run exited: %v (log %s)", proc.Err(), p.logs)
		case <-tctx.Done():
			return fmt.Errorf("%w: %s", tctx.Err(), p.Stuck(ctx, w.Last()))
		}
	}
	for rows() == 0 {
		if err := sleep(100 * time.Millisecond); err != nil {
			return res, fmt.Errorf("waiting for the first rows in ClickHouse: %w", err)
		}
	}
	p.refresh()
	sinkCaughtUp := func() bool {
		lags, err := GroupLags(tctx, p.Endpoints)
		return err == nil && Behind(lags)["sink"] == ""
	}
	for _, mode := range modes {
		f := ClickHouseFault{Mode: mode, Outage: outage}
		pid := 0
		if res.served != nil {
			pid = res.served.Cmd.Process.Pid
		} else if pid, err = childOf(proc.Cmd.Process.Pid, "clickhouse"); err != nil {
			return res, err
		}
		errsBefore := w.Last().Sum("minecart_sink_writes_total", "result=error")
		var mu sync.Mutex
		lagCtx, stopLag := context.WithCancel(tctx)
		lagDone := make(chan struct{})
		go func() { // the backlog Kafka holds for the sink, from the broker
			defer close(lagDone)
			for lagCtx.Err() == nil {
				if n, err := RawLag(lagCtx, p.endpoints(), "sink"); err == nil {
					mu.Lock()
					f.MaxSinkLag = max(f.MaxSinkLag, n)
					mu.Unlock()
				}
				select {
				case <-lagCtx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		sig := syscall.SIGKILL
		if mode == "stop" {
			sig = syscall.SIGSTOP
		} else if mode != "kill" {
			stopLag()
			return res, errors.New("mode: kill or stop")
		}
		if err := syscall.Kill(pid, sig); err != nil {
			stopLag()
			return res, err
		}
		logf("clickhouse %s (pid %d) for %v, %.0f rows in so far", mode, pid, outage, rows())
		if err := sleep(outage); err != nil {
			stopLag()
			return res, fmt.Errorf("during the ClickHouse outage: %w", err)
		}
		if mode == "kill" {
			if res.served != nil {
				<-res.served.Done()
			}
			if res.served, err = p.StartClickHouse(tctx); err != nil {
				stopLag()
				return res, err
			}
		} else if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			stopLag()
			return res, err
		}
		back, rowsAtBack := time.Now(), rows()
		for f.CaughtUpAfter == 0 {
			if f.ResumeAfter == 0 && rows() > rowsAtBack {
				f.ResumeAfter = time.Since(back)
			}
			if sinkCaughtUp() {
				f.CaughtUpAfter = time.Since(back)
				break
			}
			if err := sleep(200 * time.Millisecond); err != nil {
				stopLag()
				return res, fmt.Errorf("the sink did not catch up after ClickHouse came back: %w", err)
			}
		}
		stopLag()
		<-lagDone
		f.WriteErrors = w.Last().Sum("minecart_sink_writes_total", "result=error") - errsBefore
		res.Faults = append(res.Faults, f)
		logf("clickhouse %s", f)
	}
	if _, err := proc.WaitLine(tctx, "serving until Ctrl-C"); err != nil {
		return res, fmt.Errorf("%w: %s", err, p.Stuck(ctx, w.Last()))
	}
	// The summary came once the credits settled; their rows may still be
	// on their way to ClickHouse.
	for !sinkCaughtUp() {
		if err := sleep(500 * time.Millisecond); err != nil {
			return res, fmt.Errorf("the sink did not catch up: %w", err)
		}
	}
	res.Summary = proc.Lines()
	return res, nil
}
