package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestGatewayToClean: a box uploads overlapping batches, one of them
// twice, in JSON and gzip'd Avro, through the real gateway; the clean topic
// holds every event once and the bad one is dead-lettered by ingest.
func TestGatewayToClean(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx := context.Background()
	pcfg := kafkatest.Config(brokers)
	p, err := kafka.NewProducer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tbl, err := kafka.NewTable(ctx, pcfg, pipelines.TopicDevices)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	regKey, _ := gateway.GenerateRegistryKey()
	dev, err := gateway.NewDevices(p, tbl, regKey, nil, nil).Add(ctx, gateway.NewDevice{ID: "box-7", VehicleID: "car-7", VehicleTZ: "Asia/Shanghai", Auth: gateway.AuthHMAC})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	gw, err := gateway.New(ctx, gateway.Config{Pipelines: pcfg, DeviceKey: regKey, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	hs := httptest.NewServer(gw.Handler())
	defer hs.Close()
	st, err := NewStage(Config{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Run(t, pcfg, st)

	events := func(from, to int) []telemetry.Event {
		var evs []telemetry.Event
		for s := from; s < to; s++ {
			ev := event("car-7", s)
			ev.DeviceID, ev.VehicleID, ev.TZ = "", "", "" // the gateway fills them
			evs = append(evs, ev)
		}
		return evs
	}
	codec, _ := wire.NewCodec(schemas.SingleObject())
	post := func(body []byte, ctype string, zip bool) {
		t.Helper()
		if zip {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(body)
			w.Close()
			body = buf.Bytes()
		}
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/telemetry", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if zip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if err := gateway.SignHeaders(req.Header, "box-7", body, gateway.HMACKey(dev.Key), now, gateway.NewNonce()); err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("post: %d", res.StatusCode)
		}
	}
	a, _ := telemetry.EncodeJSON(events(0, 100))
	post(a, "application/json", false)
	bEvs := events(50, 150)
	bEvs[70].SpeedKmh = 400 // seq 120: physically impossible
	post(codec.AppendBatch(nil, bEvs), "avro/binary", true)
	post(a, "application/json", true) // the box did not see the first 202

	// 300 raw records in; out: 149 distinct good events, 1 dead letter.
	raw := kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryRaw, 300, 20*time.Second)
	if len(raw) != 300 {
		t.Fatalf("raw: %d", len(raw))
	}
	if _, _, err := timeGroup(ctx, brokers, st.Name, 0, 300); err != nil {
		t.Fatal(err)
	}
	clean, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicTelemetryClean)
	if err != nil {
		t.Fatal(err)
	}
	if len(clean) != 149 {
		t.Fatalf("clean: %d records, want 149", len(clean))
	}
	dead, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || string(dead[0].Header("code")) != telemetry.CodeSpeed {
		t.Fatalf("dead letters: %d, want 1 %s", len(dead), telemetry.CodeSpeed)
	}
	for _, r := range clean {
		ev, err := codec.DecodeEvent(r.Value, telemetry.Limits{})
		if err != nil || ev.DeviceID != "box-7" || ev.TZ != "Asia/Shanghai" || string(r.Header("device")) != "box-7" {
			t.Fatalf("clean record %+v %v", ev, err)
		}
	}
}
