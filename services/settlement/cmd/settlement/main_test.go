package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/stage"
)

// TestMainSASL runs the command as docker-compose does (brokers,
// SCRAM-SHA-512 credentials and the session key from the environment):
// the stage joins its group; the API refuses a caller without credentials,
// answers an operator's token and an owner's session (after POST
// /v1/login) from the state and credentials tables, both over SASL; a
// cancelled context ends run without error; without a session key the
// command refuses to start.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	t.Setenv("MINECART_SESSION_KEY", strings.Repeat("s", 40))
	addr := daemontest.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	sealPath := filepath.Join(t.TempDir(), "pseudonyms.key")
	if _, err := pseudonym.LoadOrCreateSealKey(sealPath); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"--metrics-addr", "", "--http-addr", addr}); err == nil || !strings.Contains(err.Error(), "pseudonym-key") {
		t.Fatalf("the stage without a pseudonym key: %v", err)
	}
	go func() {
		done <- run(ctx, []string{"--metrics-addr", "", "--http-addr", addr, "--pseudonym-key", sealPath})
	}()
	daemontest.WaitGroup(t, cfg, stage.Name, 30*time.Second)
	daemontest.Get(t, "http://"+addr+"/v1/accounts/owner-1/balance", 401, 10*time.Second)

	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	serde := schemas.SingleObject()
	op, err := auth.NewToken(ctx, p, serde, auth.RoleOperator, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.SetPassword(ctx, p, serde, "owner-1", "owner one's password", time.Now()); err != nil {
		t.Fatal(err)
	}
	body := daemontest.GetAs(t, "http://"+addr+"/v1/accounts/owner-1/balance", op, 200)
	var b api.BalanceJSON
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Owner != "owner-1" || b.Balance != 0 {
		t.Fatalf("balance %s: %+v %v", body, b, err)
	}
	var s auth.Session
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Post("http://"+addr+"/v1/login", "application/json", strings.NewReader(`{"owner":"owner-1","password":"owner one's password"}`))
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if resp.StatusCode == 200 && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	daemontest.GetAs(t, "http://"+addr+"/v1/accounts/owner-1/balance", s.Token, 200)
	daemontest.GetAs(t, "http://"+addr+"/v1/accounts/owner-2/balance", s.Token, 403)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(context.Background(), []string{"--stage=false", "--http-addr", ""}); err == nil {
		t.Fatal("a process with nothing to run started")
	}
	t.Setenv("MINECART_SESSION_KEY", "")
	if err := run(context.Background(), []string{"--stage=false", "--metrics-addr", "", "--http-addr", daemontest.Addr(t)}); err == nil || !strings.Contains(err.Error(), "session key") {
		t.Fatalf("started without a session key: %v", err)
	}
}
