package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/stage"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment): the stage joins its
// group and the API answers a balance from the state table, both over
// SASL; a cancelled context ends run without error.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	addr := daemontest.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", "", "--http-addr", addr}) }()
	daemontest.WaitGroup(t, cfg, stage.Name, 30*time.Second)
	body := daemontest.Get(t, "http://"+addr+"/v1/accounts/owner-1/balance", 200, 10*time.Second)
	var b api.BalanceJSON
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Owner != "owner-1" || b.Balance != 0 {
		t.Fatalf("balance %s: %+v %v", body, b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(context.Background(), []string{"--stage=false", "--http-addr", ""}); err == nil {
		t.Fatal("a process with nothing to run started")
	}
}
