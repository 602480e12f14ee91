package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/daemon/daemontest"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment): it creates the topics,
// joins the replaycheck group, serves its metrics, and returns nil once
// its context is cancelled. A retention below one day is an error at start.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	metrics := daemontest.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", metrics}) }()
	daemontest.WaitGroup(t, cfg, "replaycheck", 30*time.Second)
	body := daemontest.Get(t, "http://"+metrics+"/metrics", 200, 10*time.Second)
	for _, m := range []string{"go_goroutines", "minecart_replaycheck_records_total", "minecart_replaycheck_fingerprints"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(context.Background(), []string{"--replay-days", "-1"}); err == nil {
		t.Fatal("negative retention accepted")
	}
}
