// Package loadtest drives minecart with simulated fleets (package
// loadtest/fleet): a Sender that posts signed device batches to the
// gateway over HTTP as boxes would, and a Kafka producer written with
// segmentio/kafka-go, a second client independent of the franz-go the
// pipeline uses, that writes raw telemetry records directly. Both report
// accepted events per second and their latency.
package loadtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Body formats of the gateway.
const (
	FormatJSON = "json" // application/json
	FormatAvro = "avro" // avro/binary: single-object framed minecart.telemetry.Batch
)

// SenderConfig configures a Sender. Zero fields take the defaults shown.
type SenderConfig struct {
	// URL is the gateway's base URL, e.g. "http://127.0.0.1:8080"; batches
	// go to URL + "/v1/telemetry".
	URL string
	// Devices are the boxes' credentials (the simulator's provisioning list).
	Devices []fleet.Device
	// BatchSize is the most events per request (default 100); a batch never
	// mixes devices.
	BatchSize int
	// Format is FormatJSON (default) or FormatAvro.
	Format string
	// Gzip compresses bodies (Content-Encoding: gzip).
	Gzip bool
	// Concurrency is the number of requests in flight (default 16). Each
	// device is served by one lane, so its batches go one after the other,
	// in order: the next only once the previous was acknowledged.
	Concurrency int
	// QueueBatches is how many batches each lane may hold waiting (default
	// 8); Send blocks beyond, which bounds memory.
	QueueBatches int
	// MaxAttempts bounds the tries of one batch on 429, 5xx and transport
	// errors (default 20); a batch that exhausts them is counted Failed.
	MaxAttempts int
	// UnknownGrace, when > 0, retries a batch the gateway refuses as
	// unknown_device (401) within this long of the sender's start, like a
	// 429: the devices were provisioned a moment before (the gateway's
	// table follows the devices topic asynchronously). Later, or at 0, the
	// refusal is final.
	UnknownGrace time.Duration
	// Backoff is the first wait between tries without a Retry-After
	// (default 100 ms, doubling to 5 s).
	Backoff time.Duration
	// Client sends the requests (default: a client with keep-alive
	// connections for Concurrency lanes and a 60 s timeout).
	Client *http.Client
	// Now is the clock for signatures and rates (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx is done (default a timer); tests inject a
	// fake one to check Retry-After without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// ResendEvery, when > 0, sends about one batch in ResendEvery a second
	// time right after its acknowledgement, as a box that missed the ack
	// re-uploads: duplicates for ingest's dedup to drop. The choice is a
	// hash of device and first seq, so the same batches every run.
	ResendEvery int
	// Progress, if set, is called from Send at most every ProgressEvery
	// (default 1 s) with the figures so far.
	Progress      func(Report)
	ProgressEvery time.Duration
}

func (c SenderConfig) withDefaults() SenderConfig {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Format == "" {
		c.Format = FormatJSON
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.QueueBatches == 0 {
		c.QueueBatches = 8
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 20
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = pipelines.Sleep
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			MaxIdleConns: c.Concurrency * 2, MaxIdleConnsPerHost: c.Concurrency * 2, IdleConnTimeout: 90 * time.Second}}
	}
	return c
}

// Validate reports the first invalid field, after defaults.
func (c SenderConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.URL == "":
		return errors.New("sender: URL is required")
	case len(c.Devices) == 0:
		return errors.New("sender: Devices is empty")
	case c.BatchSize < 1:
		return errors.New("sender: BatchSize must be >= 1")
	case c.Format != FormatJSON && c.Format != FormatAvro:
		return fmt.Errorf("sender: Format %q: want json or avro", c.Format)
	case c.Concurrency < 1 || c.QueueBatches < 1 || c.MaxAttempts < 1:
		return errors.New("sender: Concurrency, QueueBatches and MaxAttempts must be >= 1")
	case c.ResendEvery < 0:
		return errors.New("sender: negative ResendEvery")
	}
	return nil
}

// Report is what a load run achieved.
type Report struct {
	Events   int64 // events acknowledged (202)
	Batches  int64 // requests acknowledged
	Bytes    int64 // request bytes acknowledged, as sent
	Retries  int64 // retried tries (429, 5xx, transport errors)
	Rejected int64 // events in batches refused for good (4xx other than 429)
	Failed   int64 // events in batches that exhausted MaxAttempts or were cancelled
	Resent   int64 // events sent twice on purpose (ResendEvery), counted in Events once per acknowledgement
	// Rejects counts refused batches by the gateway's reason code
	// ("bad_signature", "wrong_vehicle", ...), and retried answers by
	// "retry:<status>".
	Rejects map[string]int64
	Elapsed time.Duration
	// EventsPerSec is Events / Elapsed.
	EventsPerSec float64
	// P50 and P99 are the acknowledgement latency of accepted requests
	// (send to 202, including retries' waits for that batch).
	P50, P99 time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("%d events in %d batches in %v: %.0f events/s, ack p50 %v p99 %v, %d retries, %d resent, %d rejected, %d failed %v",
		r.Events, r.Batches, r.Elapsed.Round(time.Millisecond), r.EventsPerSec, r.P50, r.P99, r.Retries, r.Resent, r.Rejected, r.Failed, r.Rejects)
}

type batch struct {
	device string
	key    gateway.Key
	events []telemetry.Event
}

// Sender posts the events given to Send as signed device batches. Create
// it with NewSender, feed it with Send (from one goroutine), and Close it to
// wait for everything queued and stop its lanes.
type Sender struct {
	cfg   SenderConfig
	keys  map[string]gateway.Key
	codec *wire.Codec
	lanes []chan batch
	wg    sync.WaitGroup
	ctx   context.Context
	stop  context.CancelFunc
	start time.Time
	lastP time.Time

	events, batches, bytes, retries, rejected, failed, resent atomic.Int64
	mu                                                        sync.Mutex
	rejects                                                   map[string]int64
	lat                                                       latencies
	closed                                                    bool
}

// NewSender starts cfg.Concurrency lanes; Close stops them.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Sender{cfg: cfg, keys: make(map[string]gateway.Key, len(cfg.Devices)), rejects: map[string]int64{}}
	for _, d := range cfg.Devices {
		s.keys[d.DeviceID] = gateway.HMACKey(d.Secret)
	}
	if cfg.Format == FormatAvro {
		c, err := wire.NewCodec(nil)
		if err != nil {
			return nil, err
		}
		s.codec = c
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.start = cfg.Now()
	s.lastP = s.start
	s.lanes = make([]chan batch, cfg.Concurrency)
	for i := range s.lanes {
		s.lanes[i] = make(chan batch, cfg.QueueBatches)
		s.wg.Go(func() { s.lane(s.lanes[i]) })
	}
	return s, nil
}

// Send queues events: consecutive events of one device (the simulator's
// chunks keep each vehicle's events together, in time order) are cut into
// batches of at most BatchSize. It blocks while the device's lane is full
// and returns early with ctx's error. The events must not be modified
// until Close returns.
func (s *Sender) Send(ctx context.Context, events []telemetry.Event) error {
	for lo := 0; lo < len(events); {
		dev := events[lo].DeviceID
		hi := lo + 1
		for hi < len(events) && hi-lo < s.cfg.BatchSize && events[hi].DeviceID == dev {
			hi++
		}
		key, ok := s.keys[dev]
		if !ok {
			return fmt.Errorf("sender: no credentials for device %q", dev)
		}
		select {
		case s.lanes[laneOf(dev, len(s.lanes))] <- batch{device: dev, key: key, events: events[lo:hi:hi]}:
		case <-ctx.Done():
			return ctx.Err()
		}
		lo = hi
	}
	if s.cfg.Progress != nil {
		if now := s.cfg.Now(); now.Sub(s.lastP) >= s.cfg.ProgressEvery {
			s.lastP = now
			s.cfg.Progress(s.Report())
		}
	}
	return nil
}

// SendChunks sends every chunk of a simulation, then closes the Sender and
// returns its report: what `minecart run` and the CLI call.
func (s *Sender) SendChunks(ctx context.Context, chunks iter.Seq[fleet.Chunk]) (Report, error) {
	var err error
	for c := range chunks {
		if err = s.Send(ctx, c.Events); err != nil {
			break
		}
	}
	if ctx.Err() != nil {
		s.Abort() // cancelled: do not wait for what is queued
	}
	r, cerr := s.Close()
	return r, errors.Join(err, cerr)
}

func laneOf(device string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(device))
	return int(h.Sum32() % uint32(n))
}

// Close waits for every queued batch to be acknowledged, refused or given
// up, stops the lanes and returns the final report. It returns an error
// when events were not delivered (Failed > 0).
func (s *Sender) Close() (Report, error) {
	if !s.closed {
		s.closed = true
		for _, l := range s.lanes {
			close(l)
		}
		s.wg.Wait()
		s.stop()
	}
	r := s.Report()
	if r.Failed > 0 {
		return r, fmt.Errorf("sender: %d events not delivered", r.Failed)
	}
	return r, nil
}

// Abort stops the lanes without waiting for queued batches (they count as
// Failed); Close still must be called.
func (s *Sender) Abort() { s.stop() }

// Report returns the figures so far.
func (s *Sender) Report() Report {
	r := Report{Events: s.events.Load(), Batches: s.batches.Load(), Bytes: s.bytes.Load(),
		Retries: s.retries.Load(), Rejected: s.rejected.Load(), Failed: s.failed.Load(), Resent: s.resent.Load(),
		Elapsed: s.cfg.Now().Sub(s.start), P50: s.lat.quantile(0.5), P99: s.lat.quantile(0.99)}
	s.mu.Lock()
	r.Rejects = make(map[string]int64, len(s.rejects))
	for k, v := range s.rejects {
		r.Rejects[k] = v
	}
	s.mu.Unlock()
	if r.Elapsed > 0 {
		r.EventsPerSec = float64(r.Events) / r.Elapsed.Seconds()
	}
	return r
}

func (s *Sender) count(reason string) {
	s.mu.Lock()
	s.rejects[reason]++
	s.mu.Unlock()
}

// lane sends its batches one at a time, in order. Bodies are fresh
// allocations: the HTTP transport may still read a body after Do returns.
func (s *Sender) lane(in <-chan batch) {
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	size := 1024
	for b := range in {
		if s.ctx.Err() != nil {
			s.failed.Add(int64(len(b.events)))
			continue
		}
		body, err := s.encode(b.events, size, &zbuf, zw)
		if err != nil {
			s.count("encode")
			s.failed.Add(int64(len(b.events)))
			continue
		}
		size = max(size, cap(body))
		if s.post(b, body) && s.resend(b) {
			s.resent.Add(int64(len(b.events)))
			s.post(b, body)
		}
	}
}

func (s *Sender) encode(events []telemetry.Event, size int, zbuf *bytes.Buffer, zw *gzip.Writer) ([]byte, error) {
	var body []byte
	if s.codec != nil {
		body = s.codec.AppendBatch(make([]byte, 0, size), events)
	} else {
		body = appendJSONBatch(make([]byte, 0, size), events)
	}
	if !s.cfg.Gzip {
		return body, nil
	}
	zbuf.Reset()
	zw.Reset(zbuf)
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(zbuf.Bytes()), nil
}

// resend reports whether b is one of the batches sent twice.
func (s *Sender) resend(b batch) bool {
	if s.cfg.ResendEvery <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(b.device))
	return (h.Sum64()^b.events[0].Seq*0x9e3779b97f4a7c15)%uint64(s.cfg.ResendEvery) == 0
}

// post sends one batch until it is acknowledged (true), refused, or out of
// tries.
func (s *Sender) post(b batch, body []byte) bool {
	n := int64(len(b.events))
	start := s.cfg.Now()
	backoff := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		status, retryAfter, reason, err := s.try(b, body)
		switch {
		case err == nil && status == http.StatusAccepted:
			s.events.Add(n)
			s.batches.Add(1)
			s.bytes.Add(int64(len(body)))
			s.lat.add(s.cfg.Now().Sub(start))
			return true
		case err == nil && reason == gateway.ReasonUnknownDevice && s.cfg.Now().Sub(s.start) < s.cfg.UnknownGrace:
			// provisioned a moment ago: retried below
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			s.rejected.Add(n)
			s.count(reason)
			return false
		}
		if err != nil {
			s.count("retry:transport")
		} else {
			s.count("retry:" + strconv.Itoa(status))
		}
		if attempt >= s.cfg.MaxAttempts {
			s.failed.Add(n)
			return false
		}
		s.retries.Add(1)
		wait := backoff
		if retryAfter > 0 {
			wait = retryAfter
		} else {
			backoff = min(2*backoff, 5*time.Second)
		}
		if s.cfg.Sleep(s.ctx, wait) != nil {
			s.failed.Add(n)
			return false
		}
	}
}

// try makes one signed request (a fresh nonce each time) and returns the
// status, the Retry-After it asked for and the refusal's reason code.
func (s *Sender) try(b batch, body []byte) (int, time.Duration, string, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+"/v1/telemetry", bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	if s.codec != nil {
		req.Header.Set("Content-Type", "avro/binary")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if err := gateway.SignHeaders(req.Header, b.device, body, b.key, s.cfg.Now(), gateway.NewNonce()); err != nil {
		return 0, 0, "", err
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	var eb struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			eb.Error = "http_" + strconv.Itoa(resp.StatusCode)
		}
	}
	var ra time.Duration
	if v := resp.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			ra = time.Duration(secs) * time.Second
		}
	}
	return resp.StatusCode, ra, eb.Error, nil
}
