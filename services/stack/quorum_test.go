package stack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/ledger"
)

// TestStackWitnessQuorum: the embedded stack runs three witnesses under
// the 2-of-3 policy it writes to its data directory; /ledger/checkpoint
// serves the head only once cosigned (verified here against that policy
// file), the cosigned checkpoint is on minecart.ledger.checkpoints keyed
// by its size, and after a restart on the same directory the cosigned
// checkpoint is served again before any new block, and the next block
// is cosigned by the same witnesses (their keys and state survived).
func TestStackWitnessQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := func() *Stack {
		st, err := Start(ctx, Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", SessionTimeout: time.Second,
			Logger: testLogger(t), Witnesses: make([]WitnessConfig, 3)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := start()
	defer func() { st.Close() }()
	if st.Policy == nil || st.Policy.Threshold() != 2 || len(st.Witnesses) != 3 {
		t.Fatalf("policy %+v, %d witnesses", st.Policy, len(st.Witnesses))
	}
	text, err := os.ReadFile(filepath.Join(dir, PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := ledger.ParsePolicy(text)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		adjust(t, ctx, st, fmt.Sprintf("q-%03d", i))
	}
	waitHead(t, ctx, st, n)
	cp, signers := waitCosigned(t, ctx, st, policy, n)
	if len(signers) < 2 {
		t.Fatalf("cosigned by %v", signers)
	}
	if h, _ := st.Ledger.Head(ctx); h.CosignedSize != n || len(h.CosignedSigners) != len(signers) {
		t.Errorf("head: cosigned size %d by %v", h.CosignedSize, h.CosignedSigners)
	}
	for _, w := range st.Witnesses {
		if s := w.State(cp.Origin); s == nil || s.Size != n {
			t.Logf("witness %s holds %+v (a late one may lag)", w.Name(), s)
		}
	}
	// The compacted topic holds it under its size.
	rd, err := kafka.NewReader(st.Pipelines)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	if err := rd.ReadAll(ctx, pipelines.TopicLedgerCheckpoints, 0, func(rec pipelines.Record) error {
		if string(rec.Key) == string(CheckpointKey(n)) {
			_, _, err := policy.VerifyCosigned(string(rec.Value), st.LedgerKey.Public().(ed25519.PublicKey))
			found = err == nil
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	if !found {
		t.Errorf("no verified record keyed %s on %s", CheckpointKey(n), pipelines.TopicLedgerCheckpoints)
	}

	// Restart: the cosigned checkpoint is back before any new block.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = start()
	text2, _ := os.ReadFile(filepath.Join(dir, PolicyFile))
	policy2, err := ledger.ParsePolicy(text2)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range policy2.Witnesses {
		if w.VKey != policy.Witnesses[i].VKey {
			t.Errorf("witness %s has a new key after the restart", w.Name)
		}
	}
	waitCosigned(t, ctx, st, policy2, n)
	adjust(t, ctx, st, "q-after-restart")
	if _, signers := waitCosigned(t, ctx, st, policy2, n+1); len(signers) < 2 {
		t.Fatalf("after restart cosigned by %v", signers)
	}
	checkEntriesCheckpoints(t, ctx, st, policy2, n+1)
}

// checkEntriesCheckpoints waits until the entries topic holds the
// checkpoint record of size last, then checks every checkpoint record in
// it: with the quorum, each size once and in increasing order (also
// across the restart, whose publisher cosigned the same head again), each
// after the entries it covers; and no stage dead-lettered one.
func checkEntriesCheckpoints(t *testing.T, ctx context.Context, st *Stack, policy *ledger.Policy, last uint64) {
	t.Helper()
	rd, err := kafka.NewReader(st.Pipelines)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for {
		var sizes []uint64
		entries := uint64(0)
		if err := rd.ReadAll(ctx, pipelines.TopicLedgerEntries, 0, func(rec pipelines.Record) error {
			if !pipelines.IsCheckpointRecord(&rec) {
				entries++
				return nil
			}
			size, err := pipelines.CheckpointRecordSize(&rec)
			if err != nil {
				return err
			}
			if cp, _, err := policy.VerifyCosigned(string(rec.Value), st.LedgerKey.Public().(ed25519.PublicKey)); err != nil || cp.Size != size {
				t.Errorf("checkpoint record of size %d: %v (size %d)", size, err, cp.Size)
			}
			if len(sizes) > 0 && size <= sizes[len(sizes)-1] {
				t.Errorf("checkpoint record of size %d after %v", size, sizes)
			}
			if size > entries {
				t.Errorf("checkpoint record of size %d after %d entries", size, entries)
			}
			sizes = append(sizes, size)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(sizes) > 0 && sizes[len(sizes)-1] >= last {
			t.Logf("checkpoint records in the entries topic: %v", sizes)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no checkpoint record of size %d in the entries topic: %v", last, sizes)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := rd.ReadAll(ctx, pipelines.TopicDeadLetter, 0, func(rec pipelines.Record) error {
		if bytes.Contains(rec.Value, []byte(pipelines.TopicLedgerEntries)) {
			t.Errorf("a dead letter names the entries topic: %q", rec.Value)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// waitCosigned waits until /ledger/checkpoint serves a checkpoint of at
// least size entries with the policy's quorum, and returns it.
func waitCosigned(t *testing.T, ctx context.Context, st *Stack, policy *ledger.Policy, size uint64) (ledger.Checkpoint, []string) {
	t.Helper()
	var last string
	for {
		resp, err := http.Get("http://" + st.HTTPAddr() + "/ledger/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + " " + string(b)
			if resp.StatusCode == 200 {
				cp, signers, err := policy.VerifyCosigned(string(b), st.LedgerKey.Public().(ed25519.PublicKey))
				if err != nil {
					t.Fatalf("/ledger/checkpoint serves a checkpoint without the quorum: %v\n%s", err, b)
				}
				if cp.Size >= size {
					return cp, signers
				}
			}
		}
		select {
		case <-st.Failed():
			t.Fatalf("the stack stopped: %v", st.Err())
		case <-ctx.Done():
			t.Fatalf("no cosigned checkpoint of size %d; last answer %s", size, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
