package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
)

// Mains are the service mains the topology runs, by stage.
var Mains = map[string]string{
	"ingest":  "./services/ingest/cmd/ingest",
	"scoring": "./services/scoring/cmd/scoring", "ledger": "./services/ledger/cmd/ledger",
	"settlement": "./services/settlement/cmd/settlement", "sink": "./services/sink/cmd/sink",
}

// BuildMains compiles every main of Mains into dir (dir/<stage>).
func BuildMains(ctx context.Context, dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + "/"}
	for _, s := range keys(Mains) {
		args = append(args, Mains[s])
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the mains: %w\n%s", err, out)
	}
	return nil
}

// settleQuiet is how long every consumer group must have had no backlog
// for the topology to count as settled (the ledger's appends and
// settlement's bookings follow the scores within it).
const settleQuiet = 10 * time.Second

// Replica is one process of a stage, with a stable instance id.
type Replica struct {
	Stage, ID string
	Metrics   string // its /metrics address
	bin       string
	args      []string
	env       []string
	logs      string

	mu      sync.Mutex
	proc    *Proc
	watch   *Watch
	Lives   []Life
	Crashes int // exits the suite did not cause
	total   map[string]float64
}

func (r *Replica) start() error {
	p, err := Start(r.Stage+" "+r.ID, r.bin, r.logs, r.env, r.args...)
	if err != nil {
		return err
	}
	r.proc, r.watch = p, WatchProc(p, r.Metrics, nil, nil)
	return nil
}

// end records the life of p (watched by w) that ended (killed at
// killedAt, 0: it exited).
func (r *Replica) end(p *Proc, w *Watch, killedAt time.Duration) {
	fc, cu, last := w.Stats()
	in := last.By("minecart_pipeline_records_in_total", "stage")
	r.Lives = append(r.Lives, Life{KilledAt: killedAt, FirstCommit: fc, CaughtUp: cu, Lived: time.Since(p.Started), In: in})
	if r.total == nil {
		r.total = map[string]float64{}
	}
	for s, v := range in {
		r.total[s] += v
	}
}

// Topology is the pipeline as separate processes: `minecart broker`,
// `minecart clickhouse` and Replicas processes of every stage from its
// own main, with the simulated fleet provisioned and sent by the suite
// itself through a device gateway it runs in-process on the simulation's
// clock (startGateway).
type Topology struct {
	Bin, MainsDir string
	Dir           string
	Endpoints
	Gateway  string // the device API's address
	Fleet    Fleet
	Replicas int
	// DayIn is how long (wall clock) the simulated days take to upload
	// (the fleet is paced); 0: as fast as possible.
	DayIn time.Duration
	// OnMark, when set, is called by SendFleet after each time mark it
	// wrote, with the mark's (simulated) intake time: loadtest/soak
	// measures from it when a day could close.
	OnMark func(at time.Time)

	logs         string
	run          string // makes the instance ids unique on this host
	broker       *Proc
	ch           *Proc
	gw           *gateway.Server
	closeGateway func()
	replicas     []*Replica
	mu           sync.Mutex
}

// NewTopology prepares a data directory and addresses.
func NewTopology(bin, mainsDir, root, name string, fl Fleet, replicas int, dayIn time.Duration) (*Topology, error) {
	t := &Topology{Bin: bin, MainsDir: mainsDir, Dir: filepath.Join(root, name), Fleet: fl, Replicas: replicas, DayIn: dayIn,
		logs: filepath.Join(root, name+".log"), run: fmt.Sprintf("chaos%d", rand.IntN(1e6))}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return nil, err
	}
	var a [3]string
	for i := range a {
		var err error
		if a[i], err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	t.Endpoints = EndpointsFor(t.Dir, a[0], a[1])
	t.Gateway = a[2]
	return t, nil
}

// Log is the file every process of the topology writes to.
func (t *Topology) Log() string { return t.logs }

// StartBroker starts (or restarts) `minecart broker` on the topology's
// directory and address.
func (t *Topology) StartBroker(ctx context.Context) error {
	b, err := Start("minecart broker", t.Bin, t.logs, nil, t.BrokerArgs(filepath.Join(t.Dir, "kafka"))...)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := b.WaitLine(wctx, "kafka listening"); err != nil {
		b.Kill()
		return err
	}
	t.mu.Lock()
	t.broker = b
	// A new broker generates its credentials into its directory.
	t.Endpoints = EndpointsFor(t.Dir, t.Kafka, t.ClickHouse)
	t.mu.Unlock()
	return nil
}

// Broker is the running broker process.
func (t *Topology) Broker() *Proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.broker
}

// Start starts the broker, ClickHouse, provisions the fleet, then the
// gateway and the stages' replicas.
func (t *Topology) Start(ctx context.Context) error {
	if err := t.StartBroker(ctx); err != nil {
		return err
	}
	p := &Pipeline{Bin: t.Bin, Dir: t.Dir, Endpoints: t.Endpoints, logs: t.logs}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ch, err := p.StartClickHouse(wctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.ch, t.Endpoints = ch, p.Endpoints // with ClickHouse's generated users
	t.mu.Unlock()
	if err := t.provision(ctx); err != nil {
		return fmt.Errorf("provisioning the fleet: %w", err)
	}
	if err := t.keys(ctx); err != nil {
		return err
	}
	var add = func(stage, id string, extra ...string) error {
		m, err := FreeAddr()
		if err != nil {
			return err
		}
		r := &Replica{Stage: stage, ID: id, Metrics: m, bin: filepath.Join(t.MainsDir, stage), logs: t.logs,
			env:  t.ServiceEnv(),
			args: append([]string{"-metrics-addr", m}, extra...)}
		if stage != "gateway" { // the stages in consumer groups: transactional and static member ids
			r.args = append(r.args, "-instance-id", id)
		}
		if err := r.start(); err != nil {
			return err
		}
		t.replicas = append(t.replicas, r)
		return nil
	}
	if err := t.startGateway(ctx); err != nil {
		return err
	}
	if _, err := pseudonym.LoadOrCreateSealKey(t.pseudonymKey()); err != nil {
		return err
	}
	for i := range t.Replicas {
		id := func(stage string) string { return fmt.Sprintf("%s-%s-%c", t.run, stage, 'a'+i) }
		for _, st := range []struct {
			stage string
			args  []string
		}{
			{"ingest", []string{"-max-age", "0"}},
			{"scoring", []string{"-tick", "1s"}},
			{"ledger", []string{"-key", filepath.Join(t.Dir, "ledger.key"), "-create-key=false", "-http-addr", "",
				"-pseudonym-key", t.pseudonymKey(), "-pseudonym-seed", pseudonym.SimulationSeed(t.Fleet.Seed)}},
			{"settlement", []string{"-http-addr", "", "-pseudonym-key", t.pseudonymKey()}},
			{"sink", []string{"-clickhouse-dsn", t.ClickHouseDSN()}},
		} {
			if err := add(st.stage, id(st.stage), st.args...); err != nil {
				return err
			}
		}
	}
	return t.waitReady(ctx)
}

// keys creates the ledger's key (every ledger replica signs with it) and
// its public key file ledger.key.pub, which ReadSnapshot verifies the
// book with.
func (t *Topology) keys(context.Context) error {
	key := filepath.Join(t.Dir, "ledger.key")
	if _, err := ledger.LoadOrCreateKey(key); err != nil {
		return err
	}
	if _, err := os.Stat(key + ".pub"); err != nil {
		return fmt.Errorf("ledger key: %w", err)
	}
	return nil
}

// waitReady waits for the gateway's device table.
func (t *Topology) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Gateway+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway %s not ready: %w (log %s)", t.Gateway, ctx.Err(), t.logs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *Topology) sim() (*fleet.Sim, error) {
	return fleet.New(fleet.Config{Seed: t.Fleet.Seed, Vehicles: t.Fleet.Vehicles, Days: t.Fleet.Days, Start: SimStart})
}

// SimStart is the first simulated day, `minecart run`'s default.
var SimStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// provision registers the fleet as `minecart run` does (services/stack's
// ProvisionFleet): devices, two vehicles per owner, a partner catalog.
func (t *Topology) provision(ctx context.Context) error {
	sim, err := t.sim()
	if err != nil {
		return err
	}
	opts, err := t.KafkaOpts()
	if err != nil {
		return err
	}
	cfg := kafka.Config{Brokers: []string{t.Kafka}, ClientOptions: opts[1:]}
	prod, err := kafka.NewProducer(cfg)
	if err != nil {
		return err
	}
	defer prod.Close()
	serde := schemas.SingleObject()
	at := sim.Start()
	vs := sim.Vehicles()
	key, err := gateway.LoadOrCreateRegistryKey(t.deviceKey())
	if err != nil {
		return err
	}
	if err := loadtest.Provision(ctx, prod, serde, key, sim.Devices(), vs[0].TZ, at); err != nil {
		return err
	}
	for i, v := range vs {
		if err := settleapi.BindVehicle(ctx, prod, serde, v.VehicleID, fmt.Sprintf("owner-%05d", i/2), at); err != nil {
			return err
		}
	}
	ensure := func(ctx context.Context, partner string) error {
		return kafka.EnsureTopicsWith(ctx, cfg, settlement.PartnerTopics(partner))
	}
	for _, it := range []avro.CatalogItem{
		{Partner: "acme", ItemID: "coffee", Title: "A cup of coffee", PricePoints: 50, Active: true, UpdatedMs: at},
		{Partner: "acme", ItemID: "carwash", Title: "Car wash", PricePoints: 300, Active: true, UpdatedMs: at},
		{Partner: "acme", ItemID: "fuel-20", Title: "20 litres of fuel", PricePoints: 2000, Active: true, UpdatedMs: at},
	} {
		if err := settleapi.PutItem(ctx, prod, serde, &it, ensure); err != nil {
			return err
		}
	}
	return nil
}

// startGateway runs the device gateway inside the suite, as `minecart
// run` does (services/stack): its intake clock is the simulation's, so
// its time marks close the simulated days exactly as in the
// uninterrupted run (a standalone gateway's marks follow the wall
// clock, which a simulated history is far behind).
func (t *Topology) startGateway(ctx context.Context) error {
	opts, err := t.KafkaOpts()
	if err != nil {
		return err
	}
	key, err := gateway.LoadOrCreateRegistryKey(t.deviceKey())
	if err != nil {
		return err
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	gw, err := gateway.New(gctx, gateway.Config{
		Pipelines: kafka.Config{Brokers: []string{t.Kafka}, ClientOptions: opts[1:], Logger: slog.New(slog.DiscardHandler)},
		DeviceKey: key, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		return err
	}
	l, err := net.Listen("tcp", t.Gateway)
	if err != nil {
		cancel()
		return err
	}
	srv := daemon.NewServer("", gw.Handler())
	go func() { _ = srv.Serve(l) }()
	t.gw, t.closeGateway = gw, func() {
		_ = srv.Close()
		_ = gw.Close()
		cancel()
	}
	return nil
}

// deviceKey is the file of the device-registry key (the gateway's
// -device-key), as `minecart run` keeps it.
func (t *Topology) deviceKey() string { return filepath.Join(t.Dir, "devices.key") }

// pseudonymKey is the ledger's pseudonym-sealing key file, made before the
// ledger and settlement start (both are given it), as `minecart run` keeps it.
func (t *Topology) pseudonymKey() string { return filepath.Join(t.Dir, "pseudonyms.key") }

// SendFleet uploads the simulated days through the gateway as
// services/stack's SendDeliveries does: delivery by delivery, the
// gateway's intake clock set to the delivery's time and its time marks
// written before it, on past the last day's end plus scoring's grace so
// the last day closes; paced so that a day takes about DayIn. A mark
// that fails (the broker away) is written again.
func (t *Topology) SendFleet(ctx context.Context) (loadtest.Report, error) {
	sim, err := t.sim()
	if err != nil {
		return loadtest.Report{}, err
	}
	var clock atomic.Int64
	marker, err := t.gw.NewMarker(ctx, gateway.MarkConfig{ID: "chaos", Clock: func() time.Time { return time.UnixMilli(clock.Load()) }})
	if err != nil {
		return loadtest.Report{}, err
	}
	tr := &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 60 * time.Second, Transport: tr}
	var total loadtest.Report
	start, simStart := time.Now(), sim.Start()
	for d := range sim.Deliveries(fleet.Outages{}, sim.End().Add(2*time.Hour)) {
		if t.DayIn > 0 {
			due := start.Add(time.Duration(float64(d.At.Sub(simStart)) * float64(t.DayIn) / float64(24*time.Hour)))
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(time.Until(due)):
			}
		}
		if d.At.UnixMilli() > clock.Load() {
			clock.Store(d.At.UnixMilli())
		}
		for try := 0; ; try++ {
			err := marker.Write(ctx)
			if err == nil {
				break
			}
			if try > 120 || ctx.Err() != nil {
				return total, fmt.Errorf("time mark at %v: %w", d.At, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if t.OnMark != nil {
			t.OnMark(time.UnixMilli(clock.Load()))
		}
		if len(d.Events) == 0 {
			continue
		}
		s, err := loadtest.NewSender(loadtest.SenderConfig{URL: "http://" + t.Gateway, Devices: sim.Devices(), Format: loadtest.FormatJSON,
			Concurrency: 64, Client: client})
		if err != nil {
			return total, err
		}
		if err := s.Send(ctx, d.Events); err != nil {
			s.Abort()
			return total, err
		}
		rep, err := s.Close()
		total.Events += rep.Events
		total.Batches += rep.Batches
		total.Retries += rep.Retries
		total.Rejected += rep.Rejected
		total.Failed += rep.Failed
		if err != nil {
			return total, err
		}
		if rep.Rejected > 0 || rep.Failed > 0 {
			return total, fmt.Errorf("the gateway refused events at %v: %v", d.At, rep)
		}
	}
	total.Elapsed = time.Since(start)
	return total, nil
}

// Supervise restarts, like an orchestrator, any replica that exits on
// its own (counted as a crash) until ctx is done.
func (t *Topology) Supervise(ctx context.Context, logf func(string, ...any)) {
	for _, r := range t.replicas {
		go func() {
			for {
				r.mu.Lock()
				p, w := r.proc, r.watch
				r.mu.Unlock()
				if p == nil { // being killed and restarted by the suite
					select {
					case <-ctx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				select {
				case <-ctx.Done():
					return
				case <-p.Done():
				}
				r.mu.Lock()
				if r.proc == p { // not a kill of the suite's
					r.end(p, w, 0)
					r.Crashes++
					logf("%s %s exited on its own (%v): restarting it", r.Stage, r.ID, p.Err())
					time.Sleep(time.Second)
					if err := r.start(); err != nil {
						logf("restarting %s: %v", r.ID, err)
					}
				}
				r.mu.Unlock()
			}
		}()
	}
}

// KillStage kills replica r with SIGKILL, waits pause and starts it again
// with the same instance id.
func (t *Topology) KillStage(r *Replica, pause time.Duration) error {
	r.mu.Lock()
	p, w := r.proc, r.watch
	r.proc = nil // tells the supervisor: not a crash
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s is not running", r.ID)
	}
	at := time.Since(p.Started)
	w.ScrapeNow(r.Metrics)
	p.Kill()
	time.Sleep(pause)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end(p, w, at)
	return r.start()
}

// Proc is the replica's running process (nil while the suite restarts
// it, or once stopped).
func (r *Replica) Proc() *Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// ClickHouseProc is the `minecart clickhouse` process (nil before Start).
func (t *Topology) ClickHouseProc() *Proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ch
}

// Stages are the stage replicas (not the gateway).
func (t *Topology) Stages() []*Replica {
	var out []*Replica
	for _, r := range t.replicas {
		if r.Stage != "gateway" {
			out = append(out, r)
		}
	}
	return out
}

// Chaos kills a random stage replica every gap (drawn from [minGap,
// maxGap]) until ctx is done; each comes back after pause.
func (t *Topology) Chaos(ctx context.Context, rng *rand.Rand, minGap, maxGap, pause time.Duration, logf func(string, ...any)) int {
	n := 0
	reps := t.Stages()
	for {
		gap := minGap + time.Duration(rng.Int64N(int64(maxGap-minGap)+1))
		select {
		case <-ctx.Done():
			return n
		case <-time.After(gap):
		}
		r := reps[rng.IntN(len(reps))]
		if err := t.KillStage(r, pause); err != nil {
			logf("restart %s: %v", r.ID, err)
			continue
		}
		n++
		r.mu.Lock()
		l := r.Lives[len(r.Lives)-1]
		r.mu.Unlock()
		fc := "it had not committed: no partition or nothing to do"
		if l.FirstCommit > 0 {
			fc = fmt.Sprintf("its first commit had come %v after its start", l.FirstCommit.Round(10*time.Millisecond))
		}
		logf("kill %d: %s %s after %v alive (%s)", n, r.Stage, r.ID, l.KilledAt.Round(10*time.Millisecond), fc)
	}
}

// WaitSettled waits until no consumer group has a readable backlog for
// quiet (scoring's idle close, the ledger's appends and settlement's
// bookings follow within it), or fails after timeout naming the stages
// behind.
func (t *Topology) WaitSettled(ctx context.Context, quiet, timeout time.Duration) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var since time.Time
	last := map[string]string{}
	for {
		lags, err := GroupLags(tctx, t.Endpoints)
		if err == nil {
			last = Behind(lags)
			if len(last) == 0 {
				if since.IsZero() {
					since = time.Now()
				}
				if time.Since(since) >= quiet {
					return nil
				}
			} else {
				since = time.Time{}
			}
		}
		select {
		case <-tctx.Done():
			var parts []string
			for _, g := range keys(last) {
				parts = append(parts, fmt.Sprintf("stage %s stuck: lag %s", g, last[g]))
			}
			return fmt.Errorf("the stages did not settle within %v (log %s): %s", timeout, t.logs, strings.Join(parts, "; "))
		case <-time.After(time.Second):
		}
	}
}

// Close stops every process (SIGTERM, then SIGKILL).
func (t *Topology) Close() {
	var wg sync.WaitGroup
	for _, r := range t.replicas {
		r.mu.Lock()
		p := r.proc
		r.proc = nil
		r.mu.Unlock()
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
		}
	}
	wg.Wait()
	if t.closeGateway != nil {
		t.closeGateway()
	}
	if b := t.Broker(); b != nil {
		b.Stop(10 * time.Second)
	}
	if t.ch != nil {
		t.ch.Stop(10 * time.Second)
	}
}

// StopStages stops the replicas and records their last lives.
func (t *Topology) StopStages() {
	for _, r := range t.replicas {
		r.mu.Lock()
		p, w := r.proc, r.watch
		r.proc = nil
		r.mu.Unlock()
		if p != nil {
			p.Stop(10 * time.Second)
			r.mu.Lock()
			r.end(p, w, 0)
			r.mu.Unlock()
		}
	}
}

// Consumed sums, by stage, the records every replica consumed over all
// its lives (call after StopStages).
func (t *Topology) Consumed() map[string]float64 {
	out := map[string]float64{}
	for _, r := range t.replicas {
		for s, v := range r.total {
			out[s] += v
		}
	}
	return out
}

// Restarts are the first-commit times of every restart (every life but
// each replica's first).
func (t *Topology) Restarts() []time.Duration {
	var out []time.Duration
	for _, r := range t.Stages() {
		for i, l := range r.Lives {
			if i > 0 && l.FirstCommit > 0 {
				out = append(out, l.FirstCommit)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// RestartBroker stops the broker (SIGTERM, or SIGKILL when kill), waits
// pause and starts it again on the same directory and address.
func (t *Topology) RestartBroker(ctx context.Context, kill bool, pause time.Duration) error {
	b := t.Broker()
	if kill {
		b.Kill()
	} else {
		b.Stop(30 * time.Second)
	}
	time.Sleep(pause)
	return t.StartBroker(ctx)
}

// Snapshot reads the topology's results (broker and ClickHouse still up).
func (t *Topology) Snapshot(ctx context.Context) (*Snapshot, error) {
	return ReadSnapshot(ctx, t.Bin, t.Dir, t.Endpoints, nil)
}
