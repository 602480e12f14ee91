package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

const (
	crashDirEnv = "BROKER_CRASH_CHILD_DIR"
	crashTopic  = "minecart.ledger.changelog"
	crashTxnID  = "ledger-replica-0"
)

// TestBrokerCrashChild is the broker process TestRestartAfterKill kills:
// on the data directory it is given, it commits a transaction of five
// records (a0..a4) under crashTxnID, then writes two more (b0, b1) in a
// second transaction that it leaves open, prints READY and waits to be
// killed. It does nothing unless started by that test.
func TestBrokerCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestRestartAfterKill")
	}
	b := start(t, dir)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(crashTxnID), kgo.DefaultProduceTopic(crashTopic))
	if err != nil {
		t.Fatal(err)
	}
	for round, vals := range [][]string{{"a0", "a1", "a2", "a3", "a4"}, {"b0", "b1"}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if round == 0 {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	fmt.Println("READY")
	select {}
}

// TestRestartAfterKill: a broker killed (SIGKILL) with a transaction open
// restarts on its data directory with no dangling transaction: the open
// transaction ends with an abort marker (kfake's reload writes none:
// dangling.go), its records stay invisible, and the next transaction of
// the same transactional id, which kfake gives the same producer id, is
// visible once committed, also after a second crash and reload (without
// the marker a read_committed reader would drop it, and kfake's replay
// would count the dangling records into it).
func TestRestartAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("child exited before READY: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child not READY after 60s")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	var logs strings.Builder
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if !strings.Contains(logs.String(), "aborted a transaction left open by a crash") {
		t.Errorf("no repair logged: %s", logs.String())
	}
	tail := kafkatest.DanglingTail(t, b.Addrs(), crashTopic, 0)
	if len(tail.Dangling) != 0 || tail.LastStableOffset != tail.HighWatermark {
		t.Fatalf("after the restart: tail %+v, want no dangling record", tail)
	}
	want := []string{"a0", "a1", "a2", "a3", "a4"}
	if got := readCommitted(t, b.Addrs(), crashTopic); !slices.Equal(got, want) {
		t.Fatalf("committed after the restart %q, want %q", got, want)
	}

	// The same transactional id commits again: same producer id.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID(crashTxnID), kgo.DefaultProduceTopic(crashTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"c0", "c1"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	want = append(want, "c0", "c1")
	if got := readCommitted(t, b.Addrs(), crashTopic); !slices.Equal(got, want) {
		t.Fatalf("committed after a new transaction of %s: %q, want %q", crashTxnID, got, want)
	}

	// A second crash (the directory as it is now on disk) and reload.
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	b2, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: crashed,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b2.Close() }()
	if got := readCommitted(t, b2.Addrs(), crashTopic); !slices.Equal(got, want) {
		t.Fatalf("committed after a second crash %q, want %q", got, want)
	}
}
