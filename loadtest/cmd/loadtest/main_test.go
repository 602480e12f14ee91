package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/gateway"
)

func TestKafkaMode(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, []string{"-mode", "kafka", "-brokers", strings.Join(brokers, ","), "-vehicles", "20",
		"-start", "2026-11-02", "-max-events", "12345"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "12345 events") {
		t.Fatalf("output: %s", out.String())
	}
	if recs := kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryRaw, 12345, 20*time.Second); len(recs) != 12345 {
		t.Fatalf("%d records on the raw topic, want 12345", len(recs))
	}
}

func TestGatewayMode(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keyFile := filepath.Join(t.TempDir(), "devices.key")
	regKey, err := gateway.LoadOrCreateRegistryKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(ctx, gateway.Config{Pipelines: kafkatest.Config(brokers), DeviceKey: regKey, DeviceRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	devices := filepath.Join(t.TempDir(), "devices.csv")
	var out, errb bytes.Buffer
	err = run(ctx, []string{"-mode", "gateway", "-url", srv.URL, "-brokers", strings.Join(brokers, ","), "-provision", "-device-key", keyFile,
		"-devices-out", devices, "-vehicles", "8", "-start", "2026-11-02", "-max-events", "5000", "-format", "avro"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "5000 events") || !strings.Contains(out.String(), "0 rejected, 0 failed") {
		t.Fatalf("output: %s", out.String())
	}
	if st, err := os.Stat(devices); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("devices file (secrets): %v %v, want 0600", st.Mode().Perm(), err)
	}
	csv, err := os.ReadFile(devices)
	if err != nil || strings.Count(string(csv), "\n") != 9 {
		t.Fatalf("devices file: %v\n%s", err, csv)
	}
}

func TestRefusesRemoteTargets(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "gateway", "-url", "http://10.1.2.3:8080"},
		{"-mode", "kafka", "-brokers", "127.0.0.1:9092,kafka.example.com:9092"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append(args, "-vehicles", "1", "-start", "2026-11-02"), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%v: err %v", args, err)
		}
	}
}
