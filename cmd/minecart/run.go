package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/infra/chserver"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/stack"
)

// runFlags are the flags of `minecart run`.
type runFlags struct {
	vehicles, days              int
	seed                        uint64
	start, dataDir              string
	once                        bool
	kafkaAddr, httpAddr, chAddr string
	idle                        time.Duration
	format                      string
	witnesses                   int
	witnessAddrs, policy        string
}

func runCommand() *ff.Command {
	var f runFlags
	return newCommand(nil, "run", "", "run the whole pipeline with the embedded broker and ClickHouse and a simulated fleet", func(fs *flag.FlagSet) {
		fs.IntVar(&f.vehicles, "vehicles", 1000, "simulated vehicles")
		fs.IntVar(&f.days, "days", 1, "simulated days")
		fs.Uint64Var(&f.seed, "seed", 1, "simulation seed: the same seed gives the same events, scores and ledger root")
		fs.StringVar(&f.start, "start", "2026-11-01", "first simulated local day (YYYY-MM-DD)")
		fs.StringVar(&f.dataDir, "data-dir", ".minecart", "where the broker, ClickHouse and the ledger key keep their data")
		fs.BoolVar(&f.once, "once", false, "exit after the simulated days are settled and the summary printed")
		fs.StringVar(&f.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "embedded Kafka listen address")
		fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "gateway, APIs and /metrics listen address")
		fs.StringVar(&f.chAddr, "clickhouse-addr", "127.0.0.1:8123", "embedded ClickHouse HTTP listen address (empty: no ClickHouse)")
		fs.DurationVar(&f.idle, "idle-timeout", 0, "fallback, off by default (0): scoring closes a quiet partition's days after this much wall-clock silence; days close on the gateway's time marks, driven by the simulated fleet")
		fs.StringVar(&f.format, "format", loadtest.FormatJSON, "device batch format: json or avro")
		fs.IntVar(&f.witnesses, "witnesses", 3, "witnesses to run in process (state in <data-dir>/witness-N); checkpoints are published once a majority cosigned (policy in <data-dir>/"+stack.PolicyFile+"); 0: none")
		fs.StringVar(&f.witnessAddrs, "witness-addrs", "", "comma-separated listen addresses of the embedded witnesses (default 127.0.0.1:0 each)")
		fs.StringVar(&f.policy, "witness-policy", "", "a witness policy file of external witnesses (docs/ledger.md, The witness policy) instead of the embedded ones")
	}, func(ctx context.Context, _ []string) error { return runPipeline(ctx, f) })
}

// runPipeline is `minecart run`.
func runPipeline(ctx context.Context, f runFlags) error {
	day, err := time.Parse(time.DateOnly, f.start)
	if err != nil {
		return fmt.Errorf("--start: %w", err)
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return err
	}
	sim, err := fleet.New(fleet.Config{Seed: f.seed, Vehicles: f.vehicles, Days: f.days, Start: day})
	if err != nil {
		return err
	}

	dsn, readDSN, analystLogin := "", "", ""
	if f.chAddr != "" {
		// The users of the embedded ClickHouse (generated once, 0600):
		// the sink and migrations write as writer, the owner API reads as
		// reader, people log in as analyst.
		usersFile := filepath.Join(f.dataDir, "clickhouse", "users.json")
		users, _, err := chserver.EnsureUsersFile(usersFile)
		if err != nil {
			return err
		}
		writer, ok1 := chserver.FindUser(users, chserver.UserWriter)
		reader, ok2 := chserver.FindUser(users, chserver.UserReader)
		analyst, ok3 := chserver.FindUser(users, chserver.UserAnalyst)
		if !ok1 || !ok2 || !ok3 || writer.Password == "" || reader.Password == "" || analyst.Password == "" {
			return fmt.Errorf("%s: want users writer, reader and analyst with passwords in clear (delete the file to generate them)", usersFile)
		}
		addr, stop, err := startClickHouse(ctx, filepath.Join(f.dataDir, "clickhouse"), f.chAddr, usersFile)
		if err != nil {
			return err
		}
		defer stop()
		dsn, readDSN = writer.DSN(addr, "default"), reader.DSN(addr, "default")
		analystLogin = fmt.Sprintf("analysts: curl --user 'analyst:%s' 'http://%s/?query=SELECT+count()+FROM+telemetry'\n"+
			"          (read-only; the ClickHouse users and passwords are in %s)", analyst.Password, addr, usersFile)
	}
	witnesses, err := embeddedWitnesses(f)
	if err != nil {
		return err
	}
	st, err := stack.Start(ctx, stack.Config{
		DataDir: f.dataDir, KafkaAddr: f.kafkaAddr, HTTPAddr: f.httpAddr, ClickHouseDSN: dsn, ClickHouseReadDSN: readDSN,
		IdleTimeout: f.idle, Witnesses: witnesses, WitnessPolicy: f.policy,
		// A simulated fleet: pseudonym keys derived from the seed, so the
		// same seed gives the same root (docs/ledger.md, Pseudonymous leaves).
		PseudonymSeed: pseudonym.SimulationSeed(f.seed),
		// The simulated fleet uploads history: accept it however old it is.
		MaxEventAge: 0,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			slog.Warn("shutdown", "err", cerr)
		}
	}()
	fmt.Printf("minecart: kafka %s  http %s  clickhouse %s  data %s\n", strings.Join(st.Broker.Addrs(), ","), st.HTTPAddr(), f.chAddr, f.dataDir)
	printKafkaLogins(os.Stdout, st.Broker.Addrs()[0], st.Credentials, filepath.Join(f.dataDir, "kafka", broker.CredentialsFile), filepath.Join(f.dataDir, "ledger.key.pub"))
	printWitnesses(os.Stdout, st, cmp.Or(f.policy, filepath.Join(f.dataDir, stack.PolicyFile)))

	if err := st.ProvisionFleet(ctx, sim); err != nil {
		return fmt.Errorf("provisioning the simulated fleet: %w", err)
	}
	demo := stack.OwnerOf(0)
	if _, err := st.DemoOwner(ctx, demo); err != nil {
		return fmt.Errorf("demo owner: %w", err)
	}

	// Drive the fleet through the gateway, chunk by chunk, recording the
	// last acknowledged chunk so that a restart resumes after it. Resuming
	// sends that chunk again, which ingest's de-duplication drops.
	progress := filepath.Join(f.dataDir, fmt.Sprintf("sim-%d-%d-%d-%s.progress", f.seed, f.vehicles, f.days, f.start))
	from := readProgress(progress)
	if from > 0 {
		fmt.Printf("simulation: resuming at chunk %d\n", from)
		from--
	}
	t0 := time.Now()
	rep, err := st.SendFleet(ctx, sim, from, loadtest.SenderConfig{Format: f.format, Concurrency: 64}, func(k int, sofar loadtest.Report) error {
		if time.Since(lastProgress) >= 2*time.Second {
			lastProgress = time.Now()
			a, _ := st.Activity()
			fmt.Printf("[%5.0fs] sent chunk %d: %d events (%.0f/s, %d retries) | %s\n",
				time.Since(t0).Seconds(), k, sofar.Events, sofar.EventsPerSec, sofar.Retries, lagLine(a))
		}
		return writeProgress(progress, k+1)
	})
	if err != nil {
		return fmt.Errorf("sending the simulated fleet: %w", err)
	}
	fmt.Printf("simulation sent: %s\n", rep)

	fmt.Println("waiting for the days to close and settle ...")
	t0 = time.Now()
	if err := st.WaitSettled(ctx, sim.End(), 4*time.Second, func(a stack.Activity) { printActivity(a, time.Since(t0)) }); err != nil {
		return err
	}
	sum, err := st.Summary(ctx, 10)
	if err != nil {
		return err
	}
	printSummary(os.Stdout, rep, sum, analystLogin)
	printCosigned(ctx, os.Stdout, st, sum.TreeSize)
	fmt.Println()
	printLogins(os.Stdout, st.HTTPAddr(), f.dataDir, demo, sim.Vehicles()[0].VehicleID)
	if f.once {
		return nil
	}
	fmt.Printf("\nserving until Ctrl-C: gateway and APIs on http://%s, ClickHouse on http://%s, Kafka on %s\n", st.HTTPAddr(), f.chAddr, st.Broker.Addrs()[0])
	select {
	case <-ctx.Done():
		return nil
	case <-st.Failed():
		return st.Err()
	}
}

var lastProgress time.Time

// printLogins tells how to call the owner and redemption APIs: as the demo
// owner (its password is in the data directory; the session is a cookie)
// or as the operator (a bearer token in the data directory).
func printLogins(w io.Writer, httpAddr, dataDir, owner, vehicle string) {
	pw := filepath.Join(dataDir, "demo-owner.password")
	jar := filepath.Join(dataDir, "demo-owner.cookies")
	fmt.Fprintf(w, "owner login (demo owner %s, password in %s):\n", owner, pw)
	fmt.Fprintf(w, "  curl -c %s http://%s/v1/login -H 'Content-Type: application/json' -d \"{\\\"owner\\\":\\\"%s\\\",\\\"password\\\":\\\"$(cat %s)\\\"}\"\n", jar, httpAddr, owner, pw)
	fmt.Fprintf(w, "  curl -b %s http://%s/v1/vehicles/%s/position\n", jar, httpAddr, vehicle)
	fmt.Fprintf(w, "operator: curl -H \"Authorization: Bearer $(cat %s)\" http://%s/v1/fleet/scores\n", filepath.Join(dataDir, "operator.token"), httpAddr)
	fmt.Fprintf(w, "web: owner app http://%s/ (log in as %s), block explorer http://%s/explorer, console http://%s/console (the operator token)\n",
		httpAddr, owner, httpAddr, httpAddr)
}

// readProgress is the next chunk to send, 0 when nothing was recorded.
func readProgress(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func writeProgress(path string, next int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(next)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printActivity(a stack.Activity, elapsed time.Duration) {
	if time.Since(lastProgress) < 2*time.Second {
		return
	}
	lastProgress = time.Now()
	fmt.Printf("[%5.0fs] %s\n", elapsed.Seconds(), lagLine(a))
}

func lagLine(a stack.Activity) string {
	var b strings.Builder
	for _, s := range []string{"ingest", "scoring", "ledger", "settlement"} {
		fmt.Fprintf(&b, "%s in %.0f lag %.0f  ", s, a.In[s], a.Lag[s])
	}
	fmt.Fprintf(&b, "sink rows %.0f", a.Sunk)
	return b.String()
}

func printSummary(w io.Writer, rep loadtest.Report, s stack.Summary, analystLogin string) {
	fmt.Fprintln(w, "\n=== minecart summary ===")
	if rep.Events > 0 || rep.Rejected > 0 {
		fmt.Fprintf(w, "events in        %d accepted by the gateway, %d refused\n", rep.Events, rep.Rejected)
	}
	fmt.Fprintf(w, "rejected         %d dead letters, %d late events\n", s.DeadLetters, s.LateEvents)
	reasons := make([]string, 0, len(s.DeadByReason))
	for r := range s.DeadByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "  %-40s %d\n", r, s.DeadByReason[r])
	}
	fmt.Fprintf(w, "daily scores     %d (%d with fraud flags)\n", s.Scores, s.Flagged)
	fmt.Fprintf(w, "points credited  %d\n", s.PointsScored)
	fmt.Fprintf(w, "ledger           height %d, %d entries\n", s.LedgerHeight, s.TreeSize)
	fmt.Fprintf(w, "root             %s\n", s.Root)
	fmt.Fprintf(w, "balances         %d accounts, %d points outstanding\n", s.Accounts, s.Outstanding)
	for _, b := range s.TopBalances {
		fmt.Fprintf(w, "  %-22s %8d (available %d)\n", b.Owner, b.Balance, b.Available)
	}
	fmt.Fprintln(w, "top drivers")
	for _, d := range s.TopDrivers {
		fl := ""
		if len(d.Flags) > 0 {
			fl = "  flags " + strings.Join(d.Flags, ",")
		}
		fmt.Fprintf(w, "  %s %s  score %5.1f  %7.1f km  %5d points%s\n", d.VehicleID, d.Date, d.Score, d.KM, d.Points, fl)
	}
	if analystLogin != "" {
		fmt.Fprintf(w, "\n%s\n", analystLogin)
	}
}

// startClickHouse runs `minecart clickhouse` as a child process (chDB takes
// over fatal-signal handlers and allows one session per process, so it gets
// a process of its own) and returns its address once it listens.
func startClickHouse(ctx context.Context, dir, addr, usersFile string) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "..", "clickhouse.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe, "clickhouse", "--data-dir", dir, "--addr", addr, "--users-file", usersFile)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting clickhouse: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				got <- a
			}
		}
	}()
	select {
	case a := <-got:
		if err := waitPing(ctx, a); err != nil {
			stop()
			return "", nil, err
		}
		return a, stop, nil
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	stop()
	return "", nil, errors.New("clickhouse did not start in 60s (see " + filepath.Join(dir, "..", "clickhouse.log") + "; run infra/chdb/install.sh?)")
}

func waitPing(ctx context.Context, addr string) error {
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("clickhouse at %s does not answer /ping", addr)
}

// printKafkaLogins prints how analysts and partners log in to the
// embedded broker (SASL/SCRAM-SHA-512) with the generated credentials
// kept in file; the superuser's password stays in the file.
func printKafkaLogins(w io.Writer, addr string, c broker.Credentials, file, ledgerPub string) {
	fmt.Fprintf(w, "kafka logins (SASL/SCRAM-SHA-512; every credential in %s, mode 0600):\n", file)
	for _, u := range c.Users {
		switch u.Role {
		case broker.RoleAnalyst:
			fmt.Fprintf(w, "  analyst  %-16s %s   kcat -b %s -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=%s -X sasl.password=%s -L\n", u.Name, u.Password, addr, u.Name, u.Password)
		case broker.RolePartner:
			fmt.Fprintf(w, "  partner  %-16s %s   go run ./cmd/partner-example -brokers %s -partner %s -credentials %s -ledger-key %s\n", u.Name, u.Password, addr, u.Partner, file, ledgerPub)
		}
	}
}
