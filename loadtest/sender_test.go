package loadtest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestSenderGateway sends a simulated fleet through the real gateway into
// a real broker: JSON with gzip for the first half of the day, Avro for the
// second. Every event lands on the raw topic once, each device's in order.
func TestSenderGateway(t *testing.T) {
	brokers := kafkatest.Broker(t)
	pcfg := kafkatest.Config(brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sim, err := fleet.New(fleet.Config{Seed: 11, Vehicles: 5, Days: 1, Start: monday, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kafka.NewProducer(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	regKey, _ := gateway.GenerateRegistryKey()
	if err := Provision(ctx, prod, nil, regKey, sim.Devices(), "Asia/Shanghai", time.Now()); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(ctx, gateway.Config{Pipelines: pcfg, DeviceKey: regKey, DeviceRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := gw.Close(); err != nil {
			t.Error(err)
		}
	}()
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()

	var progress int
	total := int64(0)
	var reports []Report
	for _, half := range []struct {
		format string
		gzip   bool
		first  bool
	}{{FormatJSON, true, true}, {FormatAvro, false, false}} {
		s, err := NewSender(SenderConfig{URL: srv.URL, Devices: sim.Devices(), Format: half.format, Gzip: half.gzip,
			Concurrency: 4, Progress: func(Report) { progress++ }, ProgressEvery: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		for c := range sim.Chunks() {
			if c.Start.Sub(sim.Start()) < 12*time.Hour != half.first {
				continue
			}
			total += int64(len(c.Events))
			if err := s.Send(ctx, c.Events); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := s.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s gzip=%v: %v", half.format, half.gzip, rep)
		reports = append(reports, rep)
	}
	if got := reports[0].Events + reports[1].Events; got != total || reports[0].Rejected+reports[1].Rejected != 0 {
		t.Fatalf("accepted %d of %d events (%v / %v)", got, total, reports[0], reports[1])
	}
	if progress == 0 {
		t.Error("progress callback never called")
	}
	recs := kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryRaw, int(total), 30*time.Second)
	if len(recs) != int(total) {
		t.Fatalf("raw topic holds %d records, sent %d", len(recs), total)
	}
	codec, _ := wire.NewCodec(schemas.SingleObject())
	last := map[string]uint64{}
	for _, r := range recs {
		ev, err := codec.DecodeEvent(r.Value, telemetry.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Seq != last[ev.DeviceID]+1 {
			t.Fatalf("device %s: seq %d after %d (lost, duplicated or reordered)", ev.DeviceID, ev.Seq, last[ev.DeviceID])
		}
		last[ev.DeviceID] = ev.Seq
	}
}

// fakeGateway is a real HTTP server that checks signatures like the
// gateway, answers 429 (Retry-After: 3) to each device's first try and 503
// to its third, refuses one device for good, and records every accepted
// batch's first seq per device.
type fakeGateway struct {
	secrets map[string][]byte
	refuse  string
	mu      sync.Mutex
	tries   map[string]int
	seqs    map[string][]uint64
	nonces  map[string]bool
	bad     int
	// unknownFirst answers the first tries of every device 401
	// unknown_device (a device provisioned a moment ago), before the rest.
	unknownFirst int
	unknown      map[string]int
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	dev := r.Header.Get(gateway.HeaderDevice)
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, f.secrets[dev])
	m.Write(gateway.Canonical(dev, r.Header.Get(gateway.HeaderTimestamp), r.Header.Get(gateway.HeaderNonce), sum[:]))
	sig, _ := base64.StdEncoding.DecodeString(r.Header.Get(gateway.HeaderSignature))
	f.mu.Lock()
	defer f.mu.Unlock()
	nonce := r.Header.Get(gateway.HeaderNonce)
	if !hmac.Equal(sig, m.Sum(nil)) || f.nonces[nonce] {
		f.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.nonces[nonce] = true
	if f.unknown[dev] < f.unknownFirst {
		f.unknown[dev]++
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"unknown_device","message":"no such device"}`)
		return
	}
	f.tries[dev]++
	switch {
	case dev == f.refuse:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"implausible_speed","message":"no"}`)
		return
	case f.tries[dev] == 1:
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case f.tries[dev] == 3:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	evs, err := telemetry.DecodeJSON(body, telemetry.Limits{})
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range evs {
		f.seqs[dev] = append(f.seqs[dev], e.Seq)
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"accepted":`+strconv.Itoa(len(evs))+`}`)
}

func TestSenderRetriesAndOrder(t *testing.T) {
	sim, err := fleet.New(fleet.Config{Seed: 3, Vehicles: 6, Days: 1, Start: monday, ParkedInterval: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	devs := sim.Devices()
	fg := &fakeGateway{secrets: map[string][]byte{}, refuse: devs[5].DeviceID,
		tries: map[string]int{}, seqs: map[string][]uint64{}, nonces: map[string]bool{}}
	for _, d := range devs {
		fg.secrets[d.DeviceID] = d.Secret
	}
	srv := httptest.NewServer(fg)
	defer srv.Close()
	var mu sync.Mutex
	var waits []time.Duration
	s, err := NewSender(SenderConfig{URL: srv.URL, Devices: devs, BatchSize: 50, Concurrency: 3,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string]int{}
	n := 0
	for c := range sim.Chunks() {
		if c.Start.Sub(sim.Start()) >= 10*time.Hour {
			break
		}
		for _, e := range c.Events {
			sent[e.DeviceID]++
		}
		n += len(c.Events)
		if err := s.Send(context.Background(), c.Events); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if fg.bad != 0 {
		t.Fatalf("%d requests with a bad or reused signature", fg.bad)
	}
	if want := int64(n - sent[devs[5].DeviceID]); rep.Events != want || rep.Rejected != int64(sent[devs[5].DeviceID]) {
		t.Fatalf("accepted %d rejected %d; want %d and %d", rep.Events, rep.Rejected, want, sent[devs[5].DeviceID])
	}
	if rep.Rejects["implausible_speed"] == 0 || rep.Rejects["retry:429"] != 5 || rep.Rejects["retry:503"] != 5 || rep.Retries != 10 {
		t.Fatalf("rejects %v retries %d", rep.Rejects, rep.Retries)
	}
	if !slices.Contains(waits, 3*time.Second) || !slices.Contains(waits, 100*time.Millisecond) {
		t.Fatalf("waits %v: want Retry-After 3s and the first backoff 100ms", waits)
	}
	for _, d := range devs[:5] {
		got := fg.seqs[d.DeviceID]
		if len(got) != sent[d.DeviceID] {
			t.Fatalf("%s: %d events accepted, %d sent", d.DeviceID, len(got), sent[d.DeviceID])
		}
		for i, q := range got {
			if q != uint64(i+1) {
				t.Fatalf("%s: seq %d at position %d: batches out of order", d.DeviceID, q, i)
			}
		}
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 {
		t.Fatalf("latency p50 %v p99 %v", rep.P50, rep.P99)
	}
}

func TestSenderConfig(t *testing.T) {
	d := []fleet.Device{{DeviceID: "d", VehicleID: "v", Secret: make([]byte, 32)}}
	for name, c := range map[string]SenderConfig{
		"url":     {Devices: d},
		"devices": {URL: "http://x"},
		"format":  {URL: "http://x", Devices: d, Format: "xml"},
		"batch":   {URL: "http://x", Devices: d, BatchSize: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := NewSender(SenderConfig{URL: "http://127.0.0.1:1", Devices: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), []telemetry.Event{{DeviceID: "unknown"}}); err == nil {
		t.Error("events of an unknown device accepted")
	}
	if _, err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestSenderResend(t *testing.T) {
	sim, err := fleet.New(fleet.Config{Seed: 4, Vehicles: 4, Days: 1, Start: monday})
	if err != nil {
		t.Fatal(err)
	}
	devs := sim.Devices()
	fg := &fakeGateway{secrets: map[string][]byte{}, tries: map[string]int{}, seqs: map[string][]uint64{},
		nonces: map[string]bool{}}
	for _, d := range devs {
		fg.secrets[d.DeviceID] = d.Secret
		fg.tries[d.DeviceID] = 10 // past the scripted 429 and 503
	}
	srv := httptest.NewServer(fg)
	defer srv.Close()
	s, err := NewSender(SenderConfig{URL: srv.URL, Devices: devs, ResendEvery: 5, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.SendChunks(context.Background(), sim.Chunks())
	if err != nil {
		t.Fatal(err)
	}
	dups := int64(0)
	for dev, seqs := range fg.seqs {
		seen := map[uint64]bool{}
		for i, q := range seqs {
			if seen[q] {
				dups++
			} else if i > 0 && q < seqs[i-1] {
				t.Fatalf("%s: seq %d after %d: a resend overtook a later batch", dev, q, seqs[i-1])
			}
			seen[q] = true
		}
	}
	if rep.Resent == 0 || dups != rep.Resent || rep.Events != int64(len(flatten(fg.seqs))) {
		t.Fatalf("resent %d, duplicates seen %d, events %d", rep.Resent, dups, rep.Events)
	}
	t.Logf("%v", rep)
}

func flatten(m map[string][]uint64) []uint64 {
	var out []uint64
	for _, v := range m {
		out = append(out, v...)
	}
	return out
}

func TestPaced(t *testing.T) {
	sim, err := fleet.New(fleet.Config{Seed: 1, Vehicles: 2, Days: 1, Start: monday, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var waits []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		clock = clock.Add(d)
		return nil
	}
	n := 0
	for c := range Paced(context.Background(), sim.Chunks(), 60, now, sleep) {
		// released once the window's end has passed at 60x: an hour a minute
		if want := time.Duration(c.End.Sub(sim.Start()) / 60); clock.Sub(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) != want {
			t.Fatalf("chunk ending %v released at +%v, want +%v", c.End, clock.Sub(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), want)
		}
		n++
	}
	if n != 24 || len(waits) != 24 || waits[0] != time.Minute {
		t.Fatalf("%d chunks, waits %v", n, waits)
	}
}

// TestSenderUnknownGrace: within UnknownGrace of its start the sender
// retries batches refused as unknown_device (devices provisioned a moment
// before), so every event arrives; without it the refusal is final.
func TestSenderUnknownGrace(t *testing.T) {
	sim, err := fleet.New(fleet.Config{Seed: 3, Vehicles: 3, Days: 1, Start: monday, ParkedInterval: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	devs := sim.Devices()
	for _, grace := range []time.Duration{time.Hour, 0} {
		fg := &fakeGateway{secrets: map[string][]byte{}, tries: map[string]int{}, seqs: map[string][]uint64{}, nonces: map[string]bool{},
			unknownFirst: 2, unknown: map[string]int{}}
		for _, d := range devs {
			fg.secrets[d.DeviceID] = d.Secret
		}
		srv := httptest.NewServer(fg)
		s, err := NewSender(SenderConfig{URL: srv.URL, Devices: devs, BatchSize: 50, Concurrency: 3, UnknownGrace: grace,
			Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for c := range sim.Chunks() {
			if c.Start.Sub(sim.Start()) >= 10*time.Hour {
				break
			}
			n += len(c.Events)
			if err := s.Send(context.Background(), c.Events); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := s.Close()
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if grace > 0 && (rep.Events != int64(n) || rep.Rejected != 0 || rep.Rejects["retry:401"] != int64(2*len(devs))) {
			t.Fatalf("grace %v: %v, want all %d events and 2 retries of 401 per device", grace, rep, n)
		}
		if grace == 0 && (rep.Rejected == 0 || rep.Rejects["unknown_device"] != int64(2*len(devs))) {
			t.Fatalf("no grace: %v, want the first 2 batches of each device refused for good", rep)
		}
	}
}
