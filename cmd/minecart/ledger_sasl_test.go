package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/ledger"
)

// TestCommandOverSASL: the CLI reaches a broker that requires SCRAM with
// the same MINECART_* settings as the services (here an empty book), and
// fails to when the credentials are wrong.
func TestCommandOverSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopicsWith(ctx, cfg, pipelines.Topology); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := ledger.LoadOrCreateKey(filepath.Join(dir, "ledger.key")); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "ledger.key.pub")
	var out bytes.Buffer
	if err := ledgerCLI(ctx, []string{"verify", "--pubkey", pub}, &out); err != nil {
		t.Fatalf("verify over SASL: %v (%s)", err, out.String())
	}
	t.Setenv("MINECART_KAFKA_SASL", "scram-sha-512:minecart:wrong")
	short, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := ledgerCLI(short, []string{"verify", "--pubkey", pub}, &out); err == nil {
		t.Fatal("verify with a wrong password succeeded")
	}
}
