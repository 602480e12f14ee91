package soak

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/chaos"
)

var (
	run      = flag.Bool("soak.run", false, "run TestSoak (make soak, make soak-scale): the fleet below through the topology")
	vehicles = flag.Int("soak.vehicles", 20000, "TestSoak: vehicles")
	days     = flag.Int("soak.days", 2, "TestSoak: days")
	seed     = flag.Uint64("soak.seed", 1, "TestSoak: the fleet's seed")
	replicas = flag.String("soak.replicas", "1", "TestSoak: replicas per stage, one run each, comma separated (1,2,4: the scaling run)")
	interval = flag.Duration("soak.interval", 10*time.Second, "TestSoak: time between samples")
	out      = flag.String("soak.out", "", "TestSoak: also write the summary tables to this file")
	kafkaAt  = flag.String("soak.kafka", "", "TestSoak: the broker's address (default: a free port)")
	chAt     = flag.String("soak.clickhouse", "", "TestSoak: ClickHouse's address (default: a free port)")
	gwAt     = flag.String("soak.gateway", "", "TestSoak: the gateway's address (default: a free port)")
	keep     = flag.Bool("soak.keep", false, "keep the data directories, logs and samples")
)

var (
	buildOnce        sync.Once
	bin, mains, root string
	buildErr         error
)

// build compiles `minecart` and the stages' mains once per test binary.
func build(t *testing.T) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("the soak harness drives real processes: not with -short")
	}
	buildOnce.Do(func() {
		if root, buildErr = os.MkdirTemp("", "minecart-soak-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if bin, buildErr = chaos.Build(ctx, root); buildErr != nil {
			return
		}
		mains = filepath.Join(root, "mains")
		buildErr = chaos.BuildMains(ctx, mains)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin, mains
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if root != "" {
		if *keep || code != 0 {
			fmt.Fprintln(os.Stderr, "soak: data directories, logs and samples kept in", root)
		} else {
			os.RemoveAll(root)
		}
	}
	os.Exit(code)
}

// logWriter sends progress lines to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestSoak is `make soak` and `make soak-scale`: one run per replica
// count of -soak.replicas, each reported, then compared.
func TestSoak(t *testing.T) {
	if !*run {
		t.Skip("make soak / make soak-scale (-soak.run)")
	}
	b, m := build(t)
	var counts []int
	for _, s := range strings.Split(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("-soak.replicas %q: %q is not a replica count", *replicas, s)
		}
		counts = append(counts, n)
	}
	var rs []*Result
	var report bytes.Buffer
	w := io.MultiWriter(&report, os.Stdout)
	for _, n := range counts {
		r, err := Run(context.Background(), Config{Vehicles: *vehicles, Days: *days, Seed: *seed, Replicas: n, Interval: *interval,
			Dir: root, Bin: b, MainsDir: m, Kafka: *kafkaAt, ClickHouse: *chAt, Gateway: *gwAt, Settle: 2 * time.Hour, Progress: os.Stdout})
		if err != nil {
			t.Fatalf("%d replica(s): %v", n, err)
		}
		Report(w, r)
		rs = append(rs, r)
		if !r.Clean() {
			t.Errorf("%d replica(s): a process did not exit cleanly", n)
		}
	}
	if len(rs) > 1 {
		ScaleReport(w, rs)
	}
	if *out != "" {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("summary written to %s", *out)
	}
}

// TestSoakTiny runs the harness on a tiny fleet with one and with two
// replicas per stage: both publish the same credits, once each, and
// every process exits with status 0 when stopped; the samples cover every
// process and stage.
func TestSoakTiny(t *testing.T) {
	b, m := build(t)
	var rs []*Result
	for _, n := range []int{1, 2} {
		r, err := Run(context.Background(), Config{Vehicles: 20, Days: 1, Seed: 5, Replicas: n, Interval: time.Second,
			Dir: root, Name: fmt.Sprintf("tiny-%d", n), Bin: b, MainsDir: m, Settle: 5 * time.Minute, Quiet: 5 * time.Second, Progress: logWriter{t}})
		if err != nil {
			t.Fatalf("%d replica(s): %v", n, err)
		}
		var rep bytes.Buffer
		Report(&rep, r)
		t.Logf("\n%s", rep.String())
		rs = append(rs, r)

		if !r.Clean() {
			t.Errorf("%d replica(s): exits %+v", n, r.Exits)
		}
		if want := 5*n + 2; len(r.Exits) != want {
			t.Errorf("%d replica(s): %d exits recorded, want %d (5 stages x %d, broker, ClickHouse)", n, len(r.Exits), want, n)
		}
		if len(r.Credits) == 0 || r.CreditCopies != 0 {
			t.Errorf("%d replica(s): %d credits, %d read twice", n, len(r.Credits), r.CreditCopies)
		}
		if r.Sent.Events == 0 || r.Sent.Rejected+r.Sent.Failed != 0 {
			t.Errorf("%d replica(s): sent %v", n, r.Sent)
		}
		// Every event the gateway took reached ingest, and every stage worked.
		for _, s := range r.Stages {
			if s.In == 0 {
				t.Errorf("%d replica(s): stage %s consumed nothing", n, s.Stage)
			}
			if s.Stage == "ingest" && s.In < float64(r.Sent.Events) {
				t.Errorf("%d replica(s): ingest consumed %.0f records, the gateway took %d events", n, s.In, r.Sent.Events)
			}
		}
		if want := 3 + 5*n; len(r.Procs) != want {
			t.Errorf("%d replica(s): %d processes sampled, want %d", n, len(r.Procs), want)
		}
		for _, p := range r.Procs {
			if p.PeakRSS <= 0 || p.CPU <= 0 {
				t.Errorf("%d replica(s): process %s: RSS %d, CPU %v s", n, p.Name, p.PeakRSS, p.CPU)
			}
		}
		credits := 0
		for _, d := range r.Days {
			credits += d.Credits
		}
		if credits != len(r.Credits) || len(r.Days) != 1 {
			t.Errorf("%d replica(s): days %+v hold %d credits, %d read", n, r.Days, credits, len(r.Credits))
		}
	}
	if !maps.Equal(rs[0].Credits, rs[1].Credits) {
		t.Errorf("credits with 2 replicas differ from 1 replica's:\n1: %v\n2: %v", rs[0].Credits, rs[1].Credits)
	}
	var sc bytes.Buffer
	ScaleReport(&sc, rs)
	t.Logf("\n%s", sc.String())
}
