package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// TestMainServesCredits runs the command as main does (brokers from
// MINECART_BROKERS) against a real broker: two scores and a watermark in,
// the proof API shows a tree of two entries signed by the key it created.
func TestMainServesCredits(t *testing.T) {
	brokers := kafkatest.Broker(t)
	t.Setenv("MINECART_BROKERS", brokers[0])
	kafkatest.Produce(t, brokers, scores(t)...)
	servesCredits(t)
}

// TestMainSASL is TestMainServesCredits as docker-compose runs the command:
// against a broker that requires SCRAM-SHA-512 (credentials from
// MINECART_KAFKA_SASL). The stage and the proof API's block follower both
// connect with SASL.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	if err := kafka.EnsureTopicsWith(context.Background(), cfg, pipelines.Topology); err != nil {
		t.Fatal(err)
	}
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ProduceBatch(context.Background(), scores(t)); err != nil {
		t.Fatal(err)
	}
	servesCredits(t)
}

// scores returns two daily scores and the watermark that closes their day.
func scores(t *testing.T) []kafka.Output {
	t.Helper()
	serde := schemas.SingleObject()
	var recs []kafka.Output
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, v := range []string{"veh-b", "veh-a"} {
		b, err := serde.Marshal(&avro.DailyScore{
			ID: v + "/2026-11-24", VehicleID: v, DeviceID: "d", Date: "2026-11-24", TZ: "UTC",
			WindowStart: day, WindowEnd: day.Add(24 * time.Hour), ConfigVersion: "r1",
			DistanceKm: 1, GpsKm: 1, OdometerKm: 1, DrivingS: 60, Events: 10, Score: 90, Points: 5, EventsHash: []byte{1},
		})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(v), Value: b})
	}
	wm, err := serde.Marshal(&avro.Watermark{Task: 0, Tasks: 1, ClosedThroughMs: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte("wm/0"), Value: wm})
}

// servesCredits runs the command with the environment set by the caller
// and waits for the proof API to show the two credits of scores.
func servesCredits(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--data-dir", dir, "--http-addr", addr, "--metrics-addr", ""}) }()
	var head proofs.Head
	deadline := time.Now().Add(30 * time.Second)
	for head.TreeSize < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/v1/ledger/head")
		if err != nil {
			continue
		}
		_ = json.NewDecoder(resp.Body).Decode(&head)
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if head.TreeSize != 2 {
		t.Fatalf("head %+v, want 2 entries", head)
	}
	pub, err := ledger.LoadPublicKey(filepath.Join(dir, "ledger.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.VerifyCheckpoint(head.Checkpoint, pub); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
}

// TestMainKeyMissing: with -create-key=false a missing key stops the
// command before it touches Kafka, and no key is created.
func TestMainKeyMissing(t *testing.T) {
	key := filepath.Join(t.TempDir(), "ledger.key")
	err := run(context.Background(), []string{"--key", key, "--create-key=false", "--brokers", "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("key file: %v", err)
	}
}
