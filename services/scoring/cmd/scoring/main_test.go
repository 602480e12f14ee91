package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/pseudonym"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment): it creates the topics,
// joins the scoring group, serves its metrics, and returns nil once its
// context is cancelled. A bad rules file is an error at start.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	metrics := daemontest.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", metrics, "--tick", "100ms"}) }()
	daemontest.WaitGroup(t, cfg, "scoring", 30*time.Second)
	body := daemontest.Get(t, "http://"+metrics+"/metrics", 200, 10*time.Second)
	for _, m := range []string{"go_goroutines", "process_cpu_seconds_total", "minecart_scoring_open_windows"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(context.Background(), []string{"--rules", "/nonexistent/rules.json"}); err == nil {
		t.Fatal("missing rules file accepted")
	}
	if err := run(context.Background(), []string{"--pseudonym-key", "/nonexistent/pseudonyms.key"}); err == nil {
		t.Fatal("missing pseudonym key file accepted")
	}
}

// TestMainShred: with -pseudonym-key the stage seals its scores
// (docs/privacy.md): it starts, follows the pseudonyms topic and exports
// the count of keys it made.
func TestMainShred(t *testing.T) {
	cfg := daemontest.Broker(t)
	metrics := daemontest.Addr(t)
	keyPath := filepath.Join(t.TempDir(), "pseudonyms.key")
	if _, err := pseudonym.LoadOrCreateSealKey(keyPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--metrics-addr", metrics, "--tick", "100ms", "--pseudonym-key", keyPath, "--pseudonym-seed", "s"})
	}()
	daemontest.WaitGroup(t, cfg, "scoring", 30*time.Second)
	if body := daemontest.Get(t, "http://"+metrics+"/metrics", 200, 10*time.Second); !strings.Contains(body, "minecart_scoring_pseudonym_keys_total") {
		t.Error("metrics lack minecart_scoring_pseudonym_keys_total")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
