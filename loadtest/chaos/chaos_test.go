package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	long     = flag.Bool("chaos.long", false, "the long form (make chaos): 20 kills of a 300-vehicle day, ClickHouse away for minutes")
	seedFlag = flag.Uint64("chaos.seed", 0, "seed of the kill moments (0: from the clock; the seed is printed)")
	keep     = flag.Bool("chaos.keep", false, "keep the data directories and logs")
)

// form is the size of a scenario.
type form struct {
	fleet   Fleet
	kills   int
	outage  time.Duration
	timeout time.Duration // a run that does not settle in this long fails
}

func currentForm() form {
	if *long {
		return form{fleet: Fleet{Vehicles: 300, Days: 1, Seed: 11}, kills: 20, outage: 2 * time.Minute, timeout: 10 * time.Minute}
	}
	return form{fleet: Fleet{Vehicles: 30, Days: 1, Seed: 11}, kills: 3, outage: 5 * time.Second, timeout: 3 * time.Minute}
}

var (
	suiteDir string
	binOnce  sync.Once
	bin      string
	binErr   error
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if suiteDir, err = os.MkdirTemp("", "minecart-chaos-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if *keep || code != 0 {
		fmt.Fprintln(os.Stderr, "chaos: data directories and logs kept in", suiteDir)
	} else {
		os.RemoveAll(suiteDir)
	}
	os.Exit(code)
}

// binary builds `minecart` once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the chaos scenarios drive real processes: not with -short")
	}
	binOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, binErr = Build(ctx, suiteDir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bin
}

// baseline is the uninterrupted run every scenario compares with.
type baselineRun struct {
	once sync.Once
	snap *Snapshot
	fin  *Finished
	err  error
}

var base baselineRun

func baseline(t *testing.T, ctx context.Context) (*Snapshot, *Finished) {
	t.Helper()
	b := binary(t)
	f := currentForm()
	base.once.Do(func() {
		p, err := NewPipeline(b, suiteDir, "baseline", f.fleet)
		if err != nil {
			base.err = err
			return
		}
		if base.fin, base.err = p.RunToEnd(ctx, f.timeout); base.err != nil {
			return
		}
		base.snap, base.err = p.Snapshot(ctx, base.fin.Summary, false)
	})
	if base.err != nil {
		t.Fatalf("uninterrupted run: %v", base.err)
	}
	t.Logf("uninterrupted run: %s; %d scores, %d accounts, tree size %d root %s, %d telemetry rows",
		base.fin.Life, len(base.snap.Scores), len(base.snap.Balances), base.snap.TreeSize, base.snap.Root, base.snap.Tables["telemetry"].Count)
	return base.snap, base.fin
}

func rng(t *testing.T) *rand.Rand {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("kill moments: -chaos.seed %d", s)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// TestKillWholeRun kills the whole `minecart run` (its process group:
// the run with its broker and stages, and its ClickHouse) at random
// moments, restarts it on the same data directory each time, runs it to
// the end and compares everything with the uninterrupted run.
func TestKillWholeRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want, wantFin := baseline(t, ctx)
	f := currentForm()
	p, err := NewPipeline(bin, suiteDir, "kill-run", f.fleet)
	if err != nil {
		t.Fatal(err)
	}
	// Half the kills fall while the fleet uploads and the stages work
	// through it, the other half anywhere in the run (closing the days,
	// appending the credits, settling).
	r := rng(t)
	const minAt = time.Second
	busy := max(wantFin.Sent+2*time.Second, minAt+time.Second)
	whole := max(wantFin.Life.Lived*8/10, busy)
	moment := func(i int) time.Duration {
		hi := busy
		if i%2 == 1 {
			hi = whole
		}
		return minAt + time.Duration(r.Int64N(int64(hi-minAt)+1))
	}
	res, fin, err := p.KillRun(ctx, f.kills, moment, f.timeout, wantFin.Life.In, t.Logf)
	if err != nil {
		t.Fatalf("after %d kills: %v", len(res.Lives), err)
	}
	var fcs, cus []time.Duration
	for _, l := range res.Lives[1:] { // every restart: after a kill
		fcs = append(fcs, l.FirstCommit)
		if l.CaughtUp > 0 {
			cus = append(cus, l.CaughtUp)
		}
	}
	fm, fw := Percentiles(fcs)
	cm, cw := Percentiles(cus)
	caught := fmt.Sprintf("median %v worst %v (%d of %d lives)", cm.Round(10*time.Millisecond), cw.Round(10*time.Millisecond), len(cus), len(fcs))
	if len(cus) == 0 {
		caught = "not measured (each life ended before the broker was asked)"
	}
	t.Logf("FIGURES kill-run: %d kills survived (%d vehicles); restart to first commit median %v worst %v; to caught up %s; records consumed beyond the uninterrupted run (committed; the sink: written again) %s",
		f.kills, f.fleet.Vehicles, fm.Round(10*time.Millisecond), fw.Round(10*time.Millisecond), caught, fmtStages(res.Reprocessed))
	got, err := p.Snapshot(ctx, fin.Summary, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURES kill-run: records written in aborted transactions (redone): %s; uninterrupted run: %s", got.Reprocessed(), want.Reprocessed())
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("after %d kills (log %s): %s", f.kills, p.Log(), Report(d))
	}
}

func fmtStages(m map[string]float64) string {
	var parts []string
	for _, s := range Stages {
		if v, ok := m[s]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", s, v))
		}
	}
	return strings.Join(parts, ", ")
}

// TestClickHouseKilled takes the ClickHouse engine away twice: killed
// under load (SIGKILL; a new one comes back on the same directory after
// the outage), then frozen (SIGSTOP: connections hang instead of
// failing) and thawed. The sink backs off and resumes, Kafka holds the
// backlog, no row is lost or doubled.
func TestClickHouseKilled(t *testing.T) { testClickHouse(t, "kill", "stop") }

// TestClickHouseFrozen is TestClickHouseKilled with the freeze under load
// and the kill after it.
func TestClickHouseFrozen(t *testing.T) { testClickHouse(t, "stop", "kill") }

func testClickHouse(t *testing.T, modes ...string) {
	t.Parallel()
	ctx := context.Background()
	want, _ := baseline(t, ctx)
	f := currentForm()
	p, err := NewPipeline(bin, suiteDir, "clickhouse-"+modes[0], f.fleet)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.RunClickHouseFaults(ctx, modes, f.outage, f.timeout+2*f.outage, t.Logf)
	if res != nil { // its processes, also when the run failed
		defer res.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range res.Faults {
		t.Logf("FIGURES clickhouse %s", fl)
	}
	got, err := p.Snapshot(ctx, res.Summary, res.Served())
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("ClickHouse %v for %v each (log %s): %s", modes, f.outage, p.Log(), Report(d))
	}
}

var (
	mainsOnce sync.Once
	mainsDir  string
	mainsErr  error
)

// mains builds the service mains once per test binary.
func mains(t *testing.T) string {
	t.Helper()
	binary(t)
	mainsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		mainsDir = suiteDir + "/mains"
		mainsErr = BuildMains(ctx, mainsDir)
	})
	if mainsErr != nil {
		t.Fatal(mainsErr)
	}
	return mainsDir
}

// topoForm sizes the topology scenarios: how long the paced day takes to
// upload, the gaps between stage kills, the broker's restarts.
type topoForm struct {
	dayIn          time.Duration
	minGap, maxGap time.Duration
	brokerFaults   int
	brokerPause    time.Duration
}

func currentTopoForm() topoForm {
	if *long {
		return topoForm{dayIn: 3 * time.Minute, minGap: 2 * time.Second, maxGap: 8 * time.Second, brokerFaults: 4, brokerPause: 20 * time.Second}
	}
	return topoForm{dayIn: 20 * time.Second, minGap: 2 * time.Second, maxGap: 5 * time.Second, brokerFaults: 2, brokerPause: 3 * time.Second}
}

// TestStagesKilled runs every stage as two replicas from its own main
// against one broker and one ClickHouse, kills a random replica (SIGKILL)
// every few seconds while the paced day uploads and settles (each comes
// back with its instance id after half a second: consumer-group
// rebalancing with work in flight), and compares with the uninterrupted
// `minecart run`.
func TestStagesKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want, wantFin := baseline(t, ctx)
	f, tf := currentForm(), currentTopoForm()
	topo, err := NewTopology(bin, mains(t), suiteDir, "stages", f.fleet, 2, tf.dayIn)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	if err := topo.Start(ctx); err != nil {
		t.Fatalf("%v (log %s)", err, topo.Log())
	}
	sctx, stopSupervising := context.WithCancel(ctx)
	defer stopSupervising()
	topo.Supervise(sctx, t.Logf)

	cctx, stopChaos := context.WithCancel(ctx)
	kills := make(chan int, 1)
	go func() { kills <- topo.Chaos(cctx, rng(t), tf.minGap, tf.maxGap, 500*time.Millisecond, t.Logf) }()
	rep, err := topo.SendFleet(ctx)
	if err != nil {
		stopChaos()
		<-kills
		t.Fatalf("sending the fleet: %v", err)
	}
	t.Logf("fleet sent: %v", rep)
	// Go on killing while the days close and the credits settle.
	time.Sleep(settleQuiet)
	stopChaos()
	n := <-kills
	if err := topo.WaitSettled(ctx, settleQuiet, f.timeout); err != nil {
		t.Fatal(err)
	}
	stopSupervising()
	topo.StopStages()
	restarts := topo.Restarts()
	med, worst := Percentiles(restarts)
	crashes := 0
	for _, r := range topo.Stages() {
		crashes += r.Crashes
	}
	reproc := map[string]float64{}
	for s, v := range topo.Consumed() {
		reproc[s] = v - wantFin.Life.In[s]
	}
	t.Logf("FIGURES stages: %d stage kills survived (2 replicas per stage, %d vehicles), %d exits on their own; restart to first commit median %v worst %v (%d restarts committed); records consumed beyond the uninterrupted run (committed; the sink: written again) %s",
		n, f.fleet.Vehicles, crashes, med.Round(10*time.Millisecond), worst.Round(10*time.Millisecond), len(restarts), fmtStages(reproc))
	got, err := topo.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURES stages: records written in aborted transactions (redone): %s", got.Reprocessed())
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("after %d stage kills (log %s): %s", n, topo.Log(), Report(d))
	}
}

// TestBrokerRestarted stops the broker under load (SIGTERM, then SIGKILL
// the next time), keeps it away for a pause and starts it again on the
// same directory: the gateway answers 503 meanwhile and the boxes retry,
// the stages reconnect, open transactions abort and are retried.
func TestBrokerRestarted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want, _ := baseline(t, ctx)
	f, tf := currentForm(), currentTopoForm()
	replicas := 1
	if *long {
		replicas = 2
	}
	topo, err := NewTopology(bin, mains(t), suiteDir, "broker", f.fleet, replicas, tf.dayIn)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	if err := topo.Start(ctx); err != nil {
		t.Fatalf("%v (log %s)", err, topo.Log())
	}
	sctx, stopSupervising := context.WithCancel(ctx)
	defer stopSupervising()
	topo.Supervise(sctx, t.Logf)

	sent := make(chan error, 1)
	go func() {
		rep, err := topo.SendFleet(ctx)
		t.Logf("fleet sent: %v", rep)
		sent <- err
	}()
	r := rng(t)
	var firsts, caught []time.Duration
	for i := range tf.brokerFaults {
		time.Sleep(tf.dayIn / time.Duration(tf.brokerFaults+1) * time.Duration(r.IntN(60)+70) / 100)
		kill := i%2 == 1
		if err := topo.RestartBroker(ctx, kill, tf.brokerPause); err != nil {
			t.Fatal(err)
		}
		first := waitCommit(topo, committed(topo), 30*time.Second)
		cu, err := waitCaughtUp(ctx, topo, 2*time.Minute)
		if err != nil {
			t.Logf("broker fault %d: %v (the final check decides)", i+1, err)
		}
		how := "stopped (SIGTERM)"
		if kill {
			how = "killed (SIGKILL)"
		}
		t.Logf("broker fault %d: %s, away %v; first commit %v and no backlog %v after it came back", i+1, how, tf.brokerPause,
			first.Round(10*time.Millisecond), cu.Round(10*time.Millisecond))
		firsts, caught = append(firsts, first), append(caught, cu)
	}
	if err := <-sent; err != nil {
		t.Fatalf("sending the fleet: %v", err)
	}
	if err := topo.WaitSettled(ctx, settleQuiet, f.timeout); err != nil {
		t.Fatal(err)
	}
	stopSupervising()
	topo.StopStages()
	crashes := 0
	for _, r := range topo.Stages() {
		crashes += r.Crashes
	}
	fm, fw := Percentiles(firsts)
	cm, cw := Percentiles(caught)
	t.Logf("FIGURES broker: %d broker restarts survived (%d replica(s) per stage), away %v each; broker back to first commit median %v worst %v, to no backlog median %v worst %v; %d stage exits on their own",
		tf.brokerFaults, replicas, tf.brokerPause, fm.Round(10*time.Millisecond), fw.Round(10*time.Millisecond),
		cm.Round(10*time.Millisecond), cw.Round(10*time.Millisecond), crashes)
	got, err := topo.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURES broker: records written in aborted transactions (redone): %s", got.Reprocessed())
	if d := Diff(want, got); len(d) > 0 {
		t.Fatalf("after %d broker restarts (log %s): %s", tf.brokerFaults, topo.Log(), Report(d))
	}
}

// committed is every stage's committed transactions now, summed over
// replicas.
func committed(topo *Topology) map[string]float64 {
	out := map[string]float64{}
	for _, r := range topo.Stages() {
		m, err := Scrape(context.Background(), r.Metrics)
		if err != nil {
			continue
		}
		out[r.Stage] += m.Sum("minecart_pipeline_transactions_total", "result=committed")
	}
	return out
}

// waitCommit waits until any stage has committed a transaction since
// before (limit: none did).
func waitCommit(topo *Topology, before map[string]float64, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit {
		for s, v := range committed(topo) {
			if v > before[s] {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return limit
}

// waitCaughtUp waits until no consumer group has a readable backlog.
func waitCaughtUp(ctx context.Context, topo *Topology, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		lags, err := GroupLags(ctx, topo.Endpoints)
		if err == nil && len(Behind(lags)) == 0 {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("a backlog remains %v after the broker came back: %v", limit, Behind(lags))
		case <-time.After(500 * time.Millisecond):
		}
	}
}
