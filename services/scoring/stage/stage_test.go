package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

const (
	stageVehicles = 24
	stageDays     = 3
)

// crashEvery makes every crashEvery-th Flush fail, so that the runtime
// aborts the transaction and rebuilds the task from the changelog (0: off).
// The count is shared by the tasks, each flushed once per transaction, so it
// must exceed the number of tasks or every transaction fails.
var crashEvery = int64(23)

// stageTraffic is stageVehicles vehicles driving an hour a day (30 s
// samples) for stageDays days, then a few minutes on a later day, which
// closes every earlier day by stream time. It returns the encoded records
// in time order and the number of days that must close.
func stageTraffic(t *testing.T, serde *schemas.Serde) ([]kafka.Output, int) {
	t.Helper()
	var evs []telemetry.Event
	start := time.Date(2026, 11, 20, 7, 0, 0, 0, shanghai)
	for v := range stageVehicles {
		tr := scoringtest.NewTrip(fmt.Sprintf("veh-%03d", v), start.Add(time.Duration(v)*time.Minute), uint64(v+1))
		tr.PeriodMs = 30000
		for d := range stageDays {
			tr.Drive(120, 40+float64(v), scoringtest.At(60, 61, scoringtest.LonAccel(-0.5)))
			tr.T = start.AddDate(0, 0, d+1).Add(time.Duration(v) * time.Minute).UnixMilli()
		}
		tr.T = start.AddDate(0, 0, stageDays+1).UnixMilli()
		tr.Drive(5, 30)
		evs = append(evs, tr.Evs...)
	}
	slices.SortStableFunc(evs, func(a, b telemetry.Event) int { return int(a.TimeMs - b.TimeMs) })
	out := make([]kafka.Output, len(evs))
	for i := range evs {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(evs[i].VehicleID), Value: b}
	}
	return out, stageVehicles * stageDays
}

// failingStage wraps st so that Flush fails on the given batches: the
// runtime aborts the transaction and rebuilds the task from its changelog,
// as after a crash before commit.
func failingStage(st pipelines.Stage, failEvery int64) pipelines.Stage {
	var flushes atomic.Int64
	inner := st.NewProcessor
	st.NewProcessor = func(ctx context.Context, t pipelines.Task) (pipelines.Processor, error) {
		p, err := inner(ctx, t)
		if err != nil {
			return nil, err
		}
		return &crashy{processor: p.(*processor), flushes: &flushes, every: failEvery}, nil
	}
	return st
}

type crashy struct {
	*processor
	flushes *atomic.Int64
	every   int64
}

func (c *crashy) Flush(ctx context.Context, out pipelines.Emitter) error {
	if c.flushes.Add(1)%c.every == 0 {
		return errors.New("injected crash before commit")
	}
	return c.processor.Flush(ctx, out)
}

// scoresByID reads the scores topic: DailyScores by id (each exactly once)
// and the last watermark of each task.
func scoresByID(t *testing.T, brokers []string, serde *schemas.Serde, want int) (map[string]avro.DailyScore, map[string]time.Time) {
	t.Helper()
	recs := kafkatest.WaitRecords(t, brokers, pipelines.TopicScores, want, 60*time.Second)
	// Generous: after a kill the broker may hold the group for a rebalance
	// timeout or the input for a transaction timeout before work resumes.
	deadline := time.Now().Add(120 * time.Second)
	for {
		scores := map[string]avro.DailyScore{}
		wms := map[string]time.Time{}
		for _, r := range recs {
			name, err := serde.Name(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			switch name {
			case schemas.DailyScore:
				var s avro.DailyScore
				if err := serde.Unmarshal(r.Value, &s); err != nil {
					t.Fatal(err)
				}
				if _, dup := scores[s.ID]; dup {
					t.Fatalf("score %s written twice", s.ID)
				}
				if string(r.Key) != s.VehicleID {
					t.Fatalf("score key %q, vehicle %v", r.Key, s.VehicleID)
				}
				scores[s.ID] = s
			case schemas.Watermark:
				var wm avro.Watermark
				if err := serde.Unmarshal(r.Value, &wm); err != nil {
					t.Fatal(err)
				}
				wms[string(r.Key)] = wm.ClosedThroughMs
			}
		}
		if len(scores) >= want || time.Now().After(deadline) {
			return scores, wms
		}
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		recs, err = kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicScores)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestStageKillRestartSameScores(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two embedded brokers")
	}
	serde := schemas.SingleObject()
	recs, days := stageTraffic(t, serde)
	cfg := Config{Serde: serde, IdleTimeout: -1, TickEvery: 200 * time.Millisecond}

	// Uninterrupted run.
	b1 := kafkatest.Broker(t)
	kafkatest.Produce(t, b1, recs...)
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc := kafkatest.Config(b1)
	stop := kafkatest.Run(t, rc, st)
	scoresByID(t, b1, serde, days)
	time.Sleep(2 * time.Second) // let the last batches (later watermarks) commit
	stop()
	want, wantWM := scoresByID(t, b1, serde, days)
	if len(want) != days {
		t.Fatalf("%d scores, want %d", len(want), days)
	}
	for id, s := range want {
		if s.HarshBrake != 1 || s.DistanceKm < 10 || s.Points <= 0 {
			t.Fatalf("%s: implausible score %+v", id, s)
		}
	}
	if len(wantWM) == 0 {
		t.Fatal("no watermarks")
	}
	checkWatermarkOrder(t, b1, serde)
	checkRecompute(t, b1, serde, want)

	// Interrupted run: produced in three parts, the stage stopped and
	// restarted between them, and transactions failing before commit.
	b2 := kafkatest.Broker(t)
	cfg2 := cfg
	cfg2.MaxClosesPerBatch = 5 // closes spread over many transactions, across restarts
	st2, err := NewStage(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if crashEvery > 0 {
		st2 = failingStage(st2, crashEvery)
	}
	rc2 := kafkatest.Config(b2)
	rc2.MaxBatch = 97
	for part := range 3 {
		lo, hi := part*len(recs)/3, (part+1)*len(recs)/3
		kafkatest.Produce(t, b2, recs[lo:hi]...)
		stop := kafkatest.Run(t, rc2, st2)
		if part < 2 {
			time.Sleep(1500 * time.Millisecond) // some batches in, some not
		} else {
			scoresByID(t, b2, serde, days)
			time.Sleep(2 * time.Second)
		}
		stop()
	}
	got, gotWM := scoresByID(t, b2, serde, days)
	if len(got) != len(want) {
		t.Fatalf("interrupted run: %d scores, want %d", len(got), len(want))
	}
	for id, s := range want {
		if !reflect.DeepEqual(got[id], s) {
			t.Fatalf("score %s differs after restarts:\n got %v\nwant %v", id, got[id], s)
		}
	}
	if !reflect.DeepEqual(gotWM, wantWM) {
		t.Fatalf("watermarks differ: got %v want %v", gotWM, wantWM)
	}
}

// checkWatermarkOrder asserts the ledger's contract on the scores topic: no
// task's watermark covers a window end before that window's score appears.
func checkWatermarkOrder(t *testing.T, brokers []string, serde *schemas.Serde) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clean, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicTelemetryClean)
	if err != nil {
		t.Fatal(err)
	}
	task := map[string]int32{}
	for _, r := range clean {
		task[string(r.Key)] = r.Partition
	}
	scores, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	mark := map[string]int64{}
	checked := 0
	for _, r := range scores {
		var s avro.DailyScore
		var wm avro.Watermark
		switch {
		case serde.Unmarshal(r.Value, &wm) == nil:
			mark[string(r.Key)] = wm.ClosedThroughMs.UnixMilli()
		case serde.Unmarshal(r.Value, &s) == nil:
			key := fmt.Sprintf("wm/%d", task[s.VehicleID])
			if end := s.WindowEnd.UnixMilli(); mark[key] >= end {
				t.Fatalf("score %s (end %d) after %s already said %d", s.ID, end, key, mark[key])
			}
			checked++
		default:
			t.Fatalf("record %x on the scores topic", r.Value)
		}
	}
	if checked == 0 {
		t.Fatal("no scores checked")
	}
}

// checkRecompute recomputes one vehicle-day from the clean topic, as anyone
// could, and compares the hash, counts and points with the published score.
func checkRecompute(t *testing.T, brokers []string, serde *schemas.Serde, scores map[string]avro.DailyScore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clean, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicTelemetryClean)
	if err != nil {
		t.Fatal(err)
	}
	const id = "veh-005/2026-11-21"
	want, ok := scores[id]
	if !ok {
		t.Fatalf("no score %s", id)
	}
	var evs []telemetry.Event
	for _, r := range clean {
		native, err := serde.DecodeAs(schemas.TelemetryEvent, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := telemetry.FromNative(native)
		if err != nil {
			t.Fatal(err)
		}
		if ev.VehicleID == "veh-005" && time.UnixMilli(ev.TimeMs).In(shanghai).Format(time.DateOnly) == "2026-11-21" {
			evs = append(evs, ev)
		}
	}
	r := scoring.DefaultRules()
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, shanghai)
	d := scoring.NewDay(day.UnixMilli(), day.AddDate(0, 0, 1).UnixMilli(), uint32(r.NightEndHour)*3600000)
	var buf []byte
	for i := range evs {
		buf = d.Add(&r, &evs[i], buf)
	}
	res := d.Result(&r)
	if !bytes.Equal(res.EventsHash[:], want.EventsHash) || res.Points != want.Points ||
		res.Events != want.Events || res.HarshBrake != int(want.HarshBrake) {
		t.Fatalf("recomputed %s: hash %x points %d events %d, published %+v", id, res.EventsHash[:4], res.Points, res.Events, want)
	}
}

// killedMemberOpts: a member killed with SIGKILL never leaves the group,
// and the broker waits up to the rebalance timeout (kgo default 60s) for it
// to rejoin before the next generation can start; keep that short here.
var killedMemberOpts = []kgo.Opt{kgo.RebalanceTimeout(3 * time.Second)}

// TestStageChild is the scoring process TestStageKill9 starts and kills; it
// does nothing in a normal test run.
func TestStageChild(t *testing.T) {
	brokers := os.Getenv("SCORING_TEST_CHILD_BROKERS")
	if brokers == "" {
		t.Skip("only run as TestStageKill9's child process")
	}
	cfg := kafkatest.Config(strings.Split(brokers, ","))
	cfg.InstanceID = "child" // a restarted child fences the killed one's open transaction
	cfg.MaxBatch = 97
	cfg.ClientOptions = killedMemberOpts
	st, err := NewStage(Config{Serde: schemas.SingleObject(), IdleTimeout: -1, MaxClosesPerBatch: 5, TickEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Like a supervisor restarting a crashed process: Run's errors (a
	// failed start-up check) are logged and Run is started again.
	for {
		if err := kafka.Run(context.Background(), cfg, st); err != nil {
			fmt.Fprintln(os.Stderr, "child: run:", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// runSupervised runs the stage until the returned stop is called,
// restarting kafka.Run when it returns an error (as a supervisor
// restarts a process), and logs those errors.
func runSupervised(t *testing.T, cfg kafka.Config, st pipelines.Stage) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := kafka.Run(ctx, cfg, st); err != nil {
				t.Logf("run (restarted): %v", err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestStageKill9 kills the scoring process with SIGKILL at random moments
// (mid-batch, mid-transaction, mid-restore) while the input arrives, then
// lets a last one finish: the scores must be exactly those of an
// uninterrupted run.
func TestStageKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	serde := schemas.SingleObject()
	recs, days := stageTraffic(t, serde)

	b1 := kafkatest.Broker(t)
	kafkatest.Produce(t, b1, recs...)
	st, err := NewStage(Config{Serde: serde, IdleTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	stop := kafkatest.Run(t, kafkatest.Config(b1), st)
	scoresByID(t, b1, serde, days)
	time.Sleep(2 * time.Second)
	stop()
	want, wantWM := scoresByID(t, b1, serde, days)

	b2 := kafkatest.Broker(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const parts = 4
	for part := range parts {
		kafkatest.Produce(t, b2, recs[part*len(recs)/parts:(part+1)*len(recs)/parts]...)
		cmd := exec.Command(os.Args[0], "-test.run=^TestStageChild$")
		cmd.Env = append(os.Environ(), "SCORING_TEST_CHILD_BROKERS="+strings.Join(b2, ","))
		var childOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &childOut, &childOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wait := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		time.Sleep(wait)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cl, err := kafkatest.ReadCommitted(ctx, b2, pipelines.TopicScoringChangelog)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("part %d: child killed after %v; %d changelog records committed so far", part, wait, len(cl))
		for _, line := range strings.Split(childOut.String(), "\n") {
			if strings.HasPrefix(line, "child: run:") {
				t.Logf("part %d: %s", part, line)
			}
		}
	}
	// The last run finishes in-process.
	st2, err := NewStage(Config{Serde: serde, IdleTimeout: -1, MaxClosesPerBatch: 5, TickEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := kafkatest.Config(b2)
	cfg.InstanceID = "child"
	cfg.ClientOptions = killedMemberOpts
	stop = runSupervised(t, cfg, st2)
	scoresByID(t, b2, serde, days)
	time.Sleep(2 * time.Second)
	stop()
	got, gotWM := scoresByID(t, b2, serde, days)
	if len(got) != len(want) {
		var missing []string
		for id := range want {
			if _, ok := got[id]; !ok {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		t.Fatalf("after kills: %d scores, want %d; missing %v; %s", len(got), len(want), missing, groupState(b2))
	}
	for id, s := range want {
		if !reflect.DeepEqual(got[id], s) {
			t.Fatalf("score %s differs after kill -9:\n got %v\nwant %v", id, got[id], s)
		}
	}
	if !reflect.DeepEqual(gotWM, wantWM) {
		t.Fatalf("watermarks differ: got %v want %v", gotWM, wantWM)
	}
	checkWatermarkOrder(t, b2, serde)
}

// groupState describes the scoring group's committed offsets against the
// end of the input, for failure messages.
func groupState(brokers []string) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, pipelines.TopicTelemetryClean)
	if err != nil {
		return err.Error()
	}
	offs, err := adm.FetchOffsets(ctx, "scoring")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := offs.Lookup(pipelines.TopicTelemetryClean, o.Partition)
		fmt.Fprintf(&b, "p%d %d/%d ", o.Partition, c.At, o.Offset)
	})
	gs, err := adm.DescribeGroups(ctx, "scoring")
	if err == nil {
		for _, g := range gs {
			fmt.Fprintf(&b, "group %s members %d", g.State, len(g.Members))
		}
	}
	return b.String()
}
