package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/daemon/daemontest"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment): /readyz turns 200 once
// the device table was read over SASL, an unsigned upload is refused, and
// a cancelled context ends run without error.
func TestMainSASL(t *testing.T) {
	daemontest.Broker(t)
	api, metrics := daemontest.Addr(t), daemontest.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", metrics, "--http-addr", api}) }()
	daemontest.Get(t, "http://"+api+"/readyz", 200, 30*time.Second)
	resp, err := http.Post("http://"+api+"/v1/telemetry", "application/json", strings.NewReader(`{"events":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unsigned upload: %d", resp.StatusCode)
	}
	if body := daemontest.Get(t, "http://"+metrics+"/metrics", 200, 10*time.Second); !strings.Contains(body, "go_goroutines") {
		t.Error("metrics lack go_goroutines")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
