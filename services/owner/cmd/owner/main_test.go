package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chschema "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/sink"
)

// TestMainSASL runs the command as docker-compose does (brokers, SCRAM
// credentials and the ClickHouse DSN from the environment): the position of
// a vehicle comes from ClickHouse, its balance's owner from the bindings
// topic read over SASL, its points answer 200 while the ledger's proof API
// is out of reach (the entry carries a proof_error), and a cancelled
// context ends run without error.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	t.Setenv("MINECART_SESSION_KEY", strings.Repeat("s", 40))
	srv := chtest.Start(t)
	t.Setenv("MINECART_CLICKHOUSE_DSN", srv.AnalystDSN()) // the owner API only reads
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := sink.Open(srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chschema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	bt, err := conn.PrepareBatch(ctx, `INSERT INTO telemetry (vehicle_id, time, device_id, seq, event_id, tz, lat_e6, lon_e6,
		speed_kmh, heading_deg, accel_lon_ms2, accel_lat_ms2, odometer_m, engine_on, fault_codes, src_topic, src_partition, src_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.Append("v-1", at, "d-1", uint64(1), "e-1", "UTC", int32(52_500_000), int32(13_400_000),
		float32(50), float32(90), float32(0), float32(0), uint64(10_000_000), true, []string{}, "t", int32(0), int64(0)); err != nil {
		t.Fatal(err)
	}
	if err := bt.Send(); err != nil {
		t.Fatal(err)
	}
	// One ledger entry of v-1; its proof would come from the ledger's proof
	// API, which is out of reach (--ledger-url below).
	entry, err := (&ledger.Entry{Kind: ledger.KindCredit, ID: "v-1/2026-11-19", VehicleID: "v-1", Date: "2026-11-19", TZ: "UTC",
		WindowEndMs: at.Truncate(24 * time.Hour).UnixMilli(), ConfigVersion: "v1", Points: 10, Score: 0.5}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := conn.PrepareBatch(ctx, `INSERT INTO ledger_entries (leaf_index, block_height, tree_size, block_time, kind, id, vehicle_id,
		account, delta, date, config_version, reason, redemption_id, ref, root, entry, src_topic, src_partition, src_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	day := at.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	if err := lb.Append(uint64(0), uint64(0), uint64(1), at, "credit", "v-1/2026-11-19", "v-1", "", int64(10), &day, "v1", "", "", "",
		merkle.HashLeaf(entry).String(), string(entry), "e", int32(0), int64(0)); err != nil {
		t.Fatal(err)
	}
	if err := lb.Send(); err != nil {
		t.Fatal(err)
	}

	ledgerPub, _, _ := ed25519.GenerateKey(nil)
	api, metrics := daemontest.Addr(t), daemontest.Addr(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", api, "--metrics-addr", metrics, "--ledger-url", "http://127.0.0.1:1",
			"--ledger-key", ledger.EncodePublicKey(ledgerPub), "--view"})
	}()
	daemontest.Get(t, "http://"+api+"/v1/vehicles/v-1/position", 401, 30*time.Second)

	// The topics exist now (the command created them): an operator token,
	// and v-1 bound to owner-1.
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	op, err := auth.NewToken(ctx, p, schemas.SingleObject(), auth.RoleOperator, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body := daemontest.GetAs(t, "http://"+api+"/v1/vehicles/v-1/position", op, 200)
	if !strings.Contains(body, "52.5") {
		t.Errorf("position %s", body)
	}
	// --view: the view follows the topics over SASL (its readers are the
	// command's); v-1's telemetry is in ClickHouse only, so its position
	// came from there (a view miss).
	deadline := time.Now().Add(30 * time.Second)
	for m := ""; !strings.Contains(m, "minecart_owner_view_caught 1") || !strings.Contains(m, `minecart_owner_view_requests_total{endpoint="position",result="miss"} 1`); {
		if time.Now().After(deadline) {
			t.Fatalf("metrics: the view did not catch up or count the miss:\n%s", m)
		}
		time.Sleep(100 * time.Millisecond)
		m = daemontest.GetAs(t, "http://"+metrics+"/metrics", "", 200)
		if !strings.Contains(m, `result="miss"`) {
			daemontest.GetAs(t, "http://"+api+"/v1/vehicles/v-1/position", op, 200)
		}
	}
	b, err := schemas.SingleObject().Marshal(&avro.AccountBinding{VehicleID: "v-1", Owner: "owner-1", UpdatedMs: at})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, pipelines.TopicAccounts, []byte("v-1"), b); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		var pts owner.Points
		body := daemontest.GetAs(t, "http://"+api+"/v1/vehicles/v-1/points", op, 200)
		if err := json.Unmarshal([]byte(body), &pts); err != nil {
			t.Fatal(err)
		}
		if len(pts.Entries) != 1 || pts.Entries[0].Proof != nil || pts.Entries[0].ProofError != "ledger proofs unavailable" {
			t.Fatalf("points %s: want v-1's entry with proof_error \"ledger proofs unavailable\"", body)
		}
		if pts.Balance != nil && pts.Balance.Owner == "owner-1" && pts.Balance.Account == "owner-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("points %s: no balance of owner-1", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// With --ledger-key, the web faces: the owner app's page hands over the
	// ledger's verifier key; an owner's vehicles come from the bindings.
	if page := daemontest.Get(t, "http://"+api+"/", 200, 10*time.Second); !strings.Contains(page, "data-vkey=\"minecart/ledger&#43;") {
		t.Errorf("owner app page: %.300s", page)
	}
	if body := daemontest.GetAs(t, "http://"+api+"/v1/catalog", op, 200); !strings.Contains(body, `"items"`) {
		t.Errorf("catalogue: %s", body)
	}
	if body := daemontest.Get(t, "http://"+metrics+"/metrics", 200, 10*time.Second); !strings.Contains(body, "minecart_owner_request_seconds") {
		t.Error("metrics lack minecart_owner_request_seconds")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Setenv("MINECART_SESSION_KEY", "")
	if err := run(context.Background(), []string{"--http-addr", daemontest.Addr(t), "--metrics-addr", ""}); err == nil || !strings.Contains(err.Error(), "session key") {
		t.Fatalf("started without a session key: %v", err)
	}
}
