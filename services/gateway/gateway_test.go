package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fixture struct {
	brokers []string
	devices *Devices
	srv     *Server
	http    *httptest.Server
	reg     *prometheus.Registry
	clock   atomic.Pointer[time.Time]
	hmacKey Key
	edKey   Key
	regKey  *RegistryKey // the device-registry key that seals HMAC secrets
	codec   *wire.Codec
	fail    atomic.Bool // make the broker refuse produce requests
	deny    atomic.Bool // make the broker answer produce requests with a fatal error
}

func (f *fixture) now() time.Time { return *f.clock.Load() }

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{}
	f.clock.Store(&t0)
	b := kafkatest.StartBroker(t, "")
	t.Cleanup(func() { b.Close() })
	f.brokers = b.Addrs()
	b.Cluster().ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster().KeepControl()
		if f.fail.Load() {
			return nil, errors.New("injected produce failure"), true
		}
		if f.deny.Load() {
			return deniedProduce(kreq.(*kmsg.ProduceRequest)), nil, true
		}
		return nil, nil, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcfg := kafkatest.Config(f.brokers)
	p, err := kafka.NewProducer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tbl, err := kafka.NewTable(context.Background(), pcfg, pipelines.TopicDevices)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	f.regKey, _ = GenerateRegistryKey()
	f.devices = NewDevices(p, tbl, f.regKey, nil, f.now)
	d1, err := f.devices.Add(ctx, NewDevice{ID: "d1", VehicleID: "v1", VehicleTZ: "Asia/Shanghai", Auth: AuthHMAC})
	if err != nil {
		t.Fatal(err)
	}
	f.hmacKey = HMACKey(d1.Key)
	pub, priv, _ := ed25519.GenerateKey(nil)
	if _, err := f.devices.Add(ctx, NewDevice{ID: "d2", VehicleID: "v2", VehicleTZ: "Europe/Paris", Auth: AuthEd25519, Key: pub}); err != nil {
		t.Fatal(err)
	}
	f.edKey = Ed25519Key(priv)

	f.reg = prometheus.NewRegistry()
	cfg := Config{Pipelines: pcfg, DeviceKey: f.regKey, Registerer: f.reg, Now: f.now, ProduceTimeout: 2 * time.Second,
		Limits: telemetry.Limits{MaxEvents: 500}, MaxBodyBytes: 256 << 10, DeviceRate: -1}
	if mod != nil {
		mod(&cfg)
	}
	f.srv, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	f.http = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.http.Close)
	f.codec, _ = wire.NewCodec(schemas.SingleObject())
	return f
}

func events(vehicle string, n, from int) []telemetry.Event {
	out := make([]telemetry.Event, n)
	for i := range out {
		s := from + i
		out[i] = telemetry.Event{EventID: fmt.Sprintf("e%d", s), Seq: uint64(s), TimeMs: t0.Add(time.Duration(s) * time.Second).UnixMilli(),
			VehicleID: vehicle, Lat: 31.2, Lon: 121.4, SpeedKmh: 40, OdometerKm: 1000 + float64(s)/100, FuelPct: -1, CoolantC: -273}
	}
	return out
}

type resp struct {
	status int
	body   errorBody
	retry  string
}

func (f *fixture) post(t *testing.T, device string, key Key, body []byte, hdr map[string]string, nonce string) resp {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if nonce == "" {
		nonce = NewNonce()
	}
	if err := SignHeaders(req.Header, device, body, key, f.now(), nonce); err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) resp {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	return resp{status: res.StatusCode, body: eb, retry: res.Header.Get("Retry-After")}
}

func jsonBody(t *testing.T, evs []telemetry.Event) []byte {
	b, err := telemetry.EncodeJSON(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestGateway(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxDecodedBytes = 512 << 10 })
	// JSON with HMAC: ids and tz filled from the registry.
	jsonEvs := events("", 50, 0)
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, jsonEvs), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("json batch: %d %+v", r.status, r.body)
	}
	// Avro, gzip, Ed25519, events naming their vehicle.
	avroEvs := events("v2", 30, 100)
	r := f.post(t, "d2", f.edKey, gz(f.codec.AppendBatch(nil, avroEvs)), map[string]string{"Content-Type": "avro/binary", "Content-Encoding": "gzip"}, "")
	if r.status != http.StatusAccepted {
		t.Fatalf("avro batch: %d %+v", r.status, r.body)
	}
	// Every refusal below must leave the topic untouched.
	good := jsonBody(t, events("", 3, 1000))
	badSig := HMACKey(bytes.Repeat([]byte{7}, 32))
	replayNonce := NewNonce()
	f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 1, 2000)), nil, replayNonce)
	for _, tc := range []struct {
		name   string
		send   func() resp
		status int
		reason string
	}{
		{"unknown device", func() resp { return f.post(t, "nobody", f.hmacKey, good, nil, "") }, 401, ReasonUnknownDevice},
		{"bad signature", func() resp { return f.post(t, "d1", badSig, good, nil, "") }, 401, ReasonBadSignature},
		{"wrong key kind", func() resp { return f.post(t, "d2", f.hmacKey, good, nil, "") }, 401, ReasonBadSignature},
		{"replayed nonce", func() resp {
			return f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 1, 2000)), nil, replayNonce)
		}, 401, ReasonReplayedNonce},
		{"stale timestamp", func() resp {
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(good))
			SignHeaders(req.Header, "d1", good, f.hmacKey, t0.Add(-6*time.Minute), NewNonce())
			return do(t, req)
		}, 401, ReasonStaleTimestamp},
		{"tampered body", func() resp {
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(jsonBody(t, events("", 4, 1000))))
			SignHeaders(req.Header, "d1", good, f.hmacKey, t0, NewNonce())
			return do(t, req)
		}, 401, ReasonBadSignature},
		{"no headers", func() resp {
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(good))
			return do(t, req)
		}, 401, ReasonMissingAuth},
		{"other vehicle", func() resp { return f.post(t, "d1", f.hmacKey, jsonBody(t, events("v2", 2, 0)), nil, "") }, 403, ReasonWrongVehicle},
		{"too large", func() resp { return f.post(t, "d1", f.hmacKey, make([]byte, 300<<10), nil, "") }, 413, ReasonBodyTooLarge},
		{"too many events", func() resp { return f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 501, 0)), nil, "") }, 400, telemetry.CodeTooManyEvents},
		{"bad json", func() resp {
			return f.post(t, "d1", f.hmacKey, []byte(`{"events":[{"event_id":"a","seq":1,"time_ms":5,"lat":1,"lon":1},{"seq":1}]}`), nil, "")
		}, 400, telemetry.CodeMissingField},
		{"bad avro", func() resp {
			return f.post(t, "d1", f.hmacKey, []byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 2}, map[string]string{"Content-Type": "avro/binary"}, "")
		}, 400, telemetry.CodeDecode},
		{"bad gzip", func() resp {
			return f.post(t, "d1", f.hmacKey, good, map[string]string{"Content-Encoding": "gzip"}, "")
		}, 400, ReasonEncoding},
		{"gzip bomb", func() resp {
			return f.post(t, "d1", f.hmacKey, gz(make([]byte, 4<<20)), map[string]string{"Content-Encoding": "gzip"}, "")
		}, 413, ReasonBodyTooLarge},
		{"xml", func() resp {
			return f.post(t, "d1", f.hmacKey, good, map[string]string{"Content-Type": "text/xml"}, "")
		}, 415, ReasonUnsupportedType},
	} {
		r := tc.send()
		if r.status != tc.status || r.body.Error != tc.reason {
			t.Errorf("%s: %d %q (%s), want %d %q", tc.name, r.status, r.body.Error, r.body.Message, tc.status, tc.reason)
		}
	}
	if r := f.post(t, "d1", f.hmacKey, []byte(`{"events":[{"event_id":"a","seq":1,"time_ms":5,"lat":1,"lon":1},{"seq":1}]}`), nil, ""); r.body.Index == nil || *r.body.Index != 1 {
		t.Errorf("error does not name the bad event: %+v", r.body)
	}
	// Revocation: the gateway refuses from the moment its table sees it.
	ctx := context.Background()
	if _, err := f.devices.Revoke(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.post(t, "d2", f.edKey, f.codec.AppendBatch(nil, events("v2", 1, 5000)), map[string]string{"Content-Type": "avro/binary"}, "")
		if r.status == http.StatusForbidden && r.body.Error == ReasonRevoked {
			break
		}
		if r.status != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("revoked device: %d %+v", r.status, r.body)
		}
		avroEvs = append(avroEvs, events("v2", 1, 5000)...) // accepted before the table saw the revocation
	}

	recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, 81, 20*time.Second)
	want := map[string]telemetry.Event{}
	for _, ev := range jsonEvs {
		ev.DeviceID, ev.VehicleID, ev.TZ = "d1", "v1", "Asia/Shanghai"
		want["d1/"+ev.EventID] = ev
	}
	ev2000 := events("", 1, 2000)[0]
	ev2000.DeviceID, ev2000.VehicleID, ev2000.TZ = "d1", "v1", "Asia/Shanghai"
	want["d1/e2000"] = ev2000
	for _, ev := range avroEvs {
		ev.DeviceID, ev.TZ = "d2", "Europe/Paris"
		want["d2/"+ev.EventID] = ev
	}
	if len(recs) != 81+len(avroEvs)-30 {
		t.Fatalf("raw topic has %d records, want %d", len(recs), 81+len(avroEvs)-30)
	}
	for _, rec := range recs {
		ev, err := f.codec.DecodeEvent(rec.Value, telemetry.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Key) != ev.VehicleID || string(rec.Header("device")) != ev.DeviceID {
			t.Fatalf("key %q header %q for %v", rec.Key, rec.Header("device"), ev.String())
		}
		w, ok := want[ev.DeviceID+"/"+ev.EventID]
		if !ok || fmt.Sprint(w) != fmt.Sprint(ev) {
			t.Fatalf("unexpected record %+v", ev)
		}
	}
	if got := metric(t, f.reg, "minecart_gateway_rejects_total", ReasonBadSignature); got != 3 {
		t.Errorf("bad_signature rejects metric = %v, want 3", got)
	}
	if got := metric(t, f.reg, "minecart_gateway_events_total", ""); got != float64(len(recs)) {
		t.Errorf("events metric = %v, want %d", got, len(recs))
	}
}

// deniedProduce answers every partition of req with a fatal error, so the
// producer fails the batch at once (before the gateway's produce timeout).
func deniedProduce(req *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.SetVersion(req.GetVersion())
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.CorruptMessage.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// TestProduceFailsFast: when Kafka refuses a batch before the produce
// timeout, the request's in-flight bytes come back at once (they leaked
// for good: the error was read from the producer, then waited for again).
func TestProduceFailsFast(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ProduceTimeout = 30 * time.Second })
	f.deny.Store(true)
	r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 5, 0)), nil, "")
	if r.status != http.StatusServiceUnavailable || r.body.Error != ReasonProduce {
		t.Fatalf("kafka refuses: %d %+v", r.status, r.body)
	}
	for deadline := time.Now().Add(5 * time.Second); f.srv.inflight.cur.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("in-flight bytes leaked: %d", f.srv.inflight.cur.Load())
		}
	}
}

func TestBackpressureAndKafkaDown(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MaxInFlightBytes = 1 << 20
		c.MaxDeviceBytes = 1 << 20 // the global bound is under test here
		c.ProduceTimeout = 300 * time.Millisecond
		c.DeviceRate, c.DeviceBurst = 10, 20
	})
	body := jsonBody(t, events("", 5, 0))
	// Another request holds most of the in-flight budget: 429, Retry-After.
	if !f.srv.inflight.tryAcquire(1<<20 - 100) {
		t.Fatal("acquire")
	}
	r := f.post(t, "d1", f.hmacKey, body, nil, "")
	if r.status != http.StatusTooManyRequests || r.body.Error != ReasonOverloaded || r.retry == "" {
		t.Fatalf("over the in-flight bound: %d %+v retry %q", r.status, r.body, r.retry)
	}
	f.srv.inflight.release(1<<20 - 100)
	// A gzip body inflating past the budget: 429 too, and nothing kept.
	r = f.post(t, "d1", f.hmacKey, gz(make([]byte, 2<<20)), map[string]string{"Content-Encoding": "gzip"}, "")
	if r.status != http.StatusTooManyRequests || r.body.Error != ReasonOverloaded {
		t.Fatalf("inflating past the budget: %d %+v", r.status, r.body)
	}
	if got := f.srv.inflight.cur.Load(); got != 0 {
		t.Fatalf("in-flight bytes after a refused gzip body: %d", got)
	}
	// Kafka refuses: 503, and the bytes are released.
	f.fail.Store(true)
	r = f.post(t, "d1", f.hmacKey, body, nil, "")
	if r.status != http.StatusServiceUnavailable || r.body.Error != ReasonProduce {
		t.Fatalf("kafka down: %d %+v", r.status, r.body)
	}
	if got := f.srv.inflight.cur.Load(); got == 0 {
		t.Fatal("bytes of records the client still holds were released")
	}
	f.fail.Store(false)
	// Once the client has given up or written them, the bytes come back.
	for deadline := time.Now().Add(40 * time.Second); f.srv.inflight.cur.Load() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("in-flight bytes leaked: %d", f.srv.inflight.cur.Load())
		}
	}
	// Rate: burst 20 events, 10/s. 5 already spent by the failed batch.
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 15, 10)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("within burst: %d %+v", r.status, r.body)
	}
	r = f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 10, 30)), nil, "")
	if r.status != http.StatusTooManyRequests || r.body.Error != ReasonRateLimited || r.retry != "2" {
		t.Fatalf("over the rate: %d %+v retry %q", r.status, r.body, r.retry)
	}
	later := t0.Add(time.Second)
	f.clock.Store(&later)
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 10, 30)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("after refill: %d %+v", r.status, r.body)
	}
	if got := metric(t, f.reg, "minecart_gateway_rejects_total", ReasonRateLimited); got != 1 {
		t.Errorf("rate_limited metric = %v", got)
	}
}

func TestDevicesAdmin(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.devices.Add(ctx, NewDevice{ID: "d1", VehicleID: "v9", VehicleTZ: "UTC", Auth: AuthHMAC}); !errors.Is(err, ErrDeviceExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	for _, bad := range []NewDevice{
		{ID: "x", VehicleID: "v", VehicleTZ: "Nowhere/City", Auth: AuthHMAC},
		{ID: "x", VehicleID: "v", VehicleTZ: "UTC", Auth: AuthHMAC, Key: []byte("short")},
		{ID: "x", VehicleID: "v", VehicleTZ: "UTC", Auth: AuthEd25519},
		{ID: "x", VehicleID: "v", VehicleTZ: "UTC", Auth: "RSA"},
		{ID: "", VehicleID: "v", VehicleTZ: "UTC", Auth: AuthHMAC},
	} {
		if _, err := f.devices.Add(ctx, bad); err == nil {
			t.Errorf("bad device accepted: %+v", bad)
		}
	}
	if _, err := f.devices.Revoke(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.devices.Revoke(ctx, "nope"); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	list, err := f.devices.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range list {
		got = append(got, d.ID+":"+d.VehicleID+":"+string(d.Auth)+":"+string(d.Status))
	}
	if s := strings.Join(got, ","); s != "d1:v1:HMAC_SHA256:ACTIVE,d2:v2:ED25519:REVOKED" {
		t.Fatalf("list: %s", s)
	}
	// /readyz and /healthz.
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(f.http.URL + p)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, res.StatusCode, err)
		}
		res.Body.Close()
	}
}

func TestSignRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	body := jsonBody(t, events("", 2, 0))
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(body))
	// Sign uses the wall clock: move the gateway's clock there.
	now := time.Now()
	f.clock.Store(&now)
	if err := Sign(req, "d1", f.hmacKey); err != nil {
		t.Fatal(err)
	}
	if r := do(t, req); r.status != http.StatusAccepted {
		t.Fatalf("Sign: %d %+v", r.status, r.body)
	}
}

// metric returns the value of counter name (with any label equal to label,
// when label is set) gathered from reg.
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestAvroTranscoded: an Avro body's records are the values AppendEvent
// writes for its events stamped with the device's ids and zone, byte for
// byte (the gateway never decodes them into events); an event for another
// vehicle is refused with its index, unless the batch also fails to
// decode further on, which answers first, as for JSON.
func TestAvroTranscoded(t *testing.T) {
	f := newFixture(t, nil)
	avro := map[string]string{"Content-Type": "avro/binary"}
	evs := events("", 20, 0)
	evs[3].FaultCodes = []string{"P0301", "U0100"}
	evs[7].TZ = "UTC" // a zone the box sent is kept
	if r := f.post(t, "d2", f.edKey, f.codec.AppendBatch(nil, evs), avro, ""); r.status != http.StatusAccepted {
		t.Fatalf("avro batch: %d %+v", r.status, r.body)
	}
	mixed := events("v2", 5, 100)
	mixed[2].VehicleID = "v1"
	mixed[4].VehicleID = "v9"
	if r := f.post(t, "d2", f.edKey, f.codec.AppendBatch(nil, mixed), avro, ""); r.status != http.StatusForbidden ||
		r.body.Error != ReasonWrongVehicle || r.body.Index == nil || *r.body.Index != 2 {
		t.Fatalf("other vehicle: %d %+v", r.status, r.body)
	}
	otherDevice := events("", 2, 200)
	otherDevice[1].DeviceID = "d1"
	if r := f.post(t, "d2", f.edKey, f.codec.AppendBatch(nil, otherDevice), avro, ""); r.status != http.StatusForbidden ||
		r.body.Error != ReasonWrongVehicle || r.body.Index == nil || *r.body.Index != 1 {
		t.Fatalf("other device: %d %+v", r.status, r.body)
	}
	truncated := f.codec.AppendBatch(nil, mixed)
	truncated = truncated[:len(truncated)-3]
	if r := f.post(t, "d2", f.edKey, truncated, avro, ""); r.status != http.StatusBadRequest || r.body.Error != telemetry.CodeDecode {
		t.Fatalf("mismatch then truncated: %d %+v", r.status, r.body)
	}
	jsonMixed := jsonBody(t, mixed)
	if r := f.post(t, "d2", f.edKey, jsonMixed[:len(jsonMixed)-2], nil, ""); r.status != http.StatusBadRequest || r.body.Error != telemetry.CodeDecode {
		t.Fatalf("json mismatch then truncated: %d %+v", r.status, r.body)
	}

	recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, len(evs), 20*time.Second)
	if len(recs) != len(evs) {
		t.Fatalf("%d records, want %d (refused batches wrote some)", len(recs), len(evs))
	}
	want := map[string][]byte{}
	for _, ev := range evs {
		ev.DeviceID, ev.VehicleID = "d2", "v2"
		if ev.TZ == "" {
			ev.TZ = "Europe/Paris"
		}
		want[ev.EventID] = f.codec.AppendEvent(nil, &ev)
	}
	for _, rec := range recs {
		ev, err := f.codec.DecodeEvent(rec.Value, telemetry.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.Value, want[ev.EventID]) || string(rec.Key) != "v2" || string(rec.Header("device")) != "d2" {
			t.Fatalf("record %s: key %q header %q value\n%x, want\n%x", ev.EventID, rec.Key, rec.Header("device"), rec.Value, want[ev.EventID])
		}
	}
}
