// Package gateway is the device-facing HTTP service: boxes POST batches of
// telemetry events (JSON or Avro, optionally gzip), signed with their
// device credential (HMAC-SHA256 or Ed25519). The gateway authenticates the
// device against the registry (the compacted topic pipelines.TopicDevices),
// checks it writes only for its own vehicle, and produces every event as
// its own Avro record to pipelines.TopicTelemetryRaw. It answers 202 only
// after Kafka acknowledged every record (acks=all, idempotent), and bounds
// what it holds: in-flight bytes (429 when exceeded), body and batch sizes
// (413/400), per-device event rate (429).
package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Config configures a gateway. Zero fields take their defaults.
type Config struct {
	// Pipelines gives the brokers, logger, Serde and client options of the
	// producer and of the device table.
	Pipelines kafka.Config
	// DeviceKey opens the HMAC secrets sealed on the devices topic
	// (seal.go). Nil: every HMAC device is refused (ReasonNotSealed).
	DeviceKey *RegistryKey
	// Registerer receives the gateway's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Logger (default Pipelines.Logger, then slog.Default()).
	Logger *slog.Logger
	// Limits bound a batch: events, id and fault-code sizes.
	Limits telemetry.Limits
	// MaxBodyBytes bounds the body as sent (default 8 MiB); larger is 413.
	MaxBodyBytes int64
	// MaxDecodedBytes bounds a gzip body once inflated (default 64 MiB).
	MaxDecodedBytes int64
	// MaxInFlightBytes bounds the bytes of all requests being handled
	// (bodies, inflated bodies, encoded records); beyond it requests get
	// 429 with Retry-After (default 256 MiB).
	MaxInFlightBytes int64
	// MaxSkew is how far a request's timestamp may be from now (default 5m).
	MaxSkew time.Duration
	// MaxNonces bounds the replay cache per MaxSkew window (default 4M).
	MaxNonces int
	// DeviceRate is each device's sustained rate in events per second
	// (default 2000; negative: no limit); DeviceBurst its bucket size
	// (default Limits.MaxEvents).
	DeviceRate  float64
	DeviceBurst int
	// ProduceTimeout bounds waiting for Kafka's acknowledgement (default 30s);
	// past it the request gets 503 and nothing is acknowledged.
	ProduceTimeout time.Duration
	// RetryAfter is the Retry-After of 429 and 503 answers (default 1s).
	RetryAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = c.Pipelines.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Pipelines.Serde == nil {
		c.Pipelines.Serde = schemas.SingleObject()
	}
	c.Limits = c.Limits.Defaults()
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = 64 << 20
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 256 << 20
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if c.MaxNonces == 0 {
		c.MaxNonces = 4 << 20
	}
	if c.DeviceRate == 0 {
		c.DeviceRate = 2000
	}
	if c.DeviceBurst == 0 {
		c.DeviceBurst = c.Limits.MaxEvents
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 30 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if err := c.Pipelines.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.MaxBodyBytes < 0 || c.MaxDecodedBytes < 0 || c.MaxInFlightBytes < 0 || c.MaxSkew < 0 ||
		c.MaxNonces < 0 || c.DeviceBurst < 0 || c.ProduceTimeout < 0 || c.RetryAfter < 0 {
		return errors.New("gateway: negative limit")
	}
	d := c.withDefaults()
	if d.MaxInFlightBytes < d.MaxBodyBytes {
		return fmt.Errorf("gateway: max in-flight bytes %d below max body bytes %d", d.MaxInFlightBytes, d.MaxBodyBytes)
	}
	return nil
}

// Server is a running gateway: a producer and a follower of the device
// table. Close stops both.
type Server struct {
	cfg      Config
	log      *slog.Logger
	producer *kafka.Producer
	table    *kafka.Table
	reg      *registry
	codec    *wire.Codec
	inflight inflight
	nonces   *nonces
	limiter  *limiter
	m        *metrics
	ready    atomic.Bool
	bufs     sync.Pool
}

// New connects the producer and starts following the device table; the
// table's goroutine stops on Close (or when ctx is done).
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	codec, err := wire.NewCodec(cfg.Pipelines.Serde)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p, err := kafka.NewProducer(cfg.Pipelines)
	if err != nil {
		return nil, err
	}
	t, err := kafka.NewTable(ctx, cfg.Pipelines, pipelines.TopicDevices)
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, producer: p, table: t, codec: codec, m: m,
		reg:     &registry{table: t, key: cfg.DeviceKey, serde: cfg.Pipelines.Serde, cache: map[string]cachedDevice{}},
		nonces:  newNonces(cfg.MaxSkew, cfg.MaxNonces, cfg.Now()),
		limiter: &limiter{rate: cfg.DeviceRate, burst: float64(cfg.DeviceBurst), buckets: map[string]*bucket{}},
	}
	s.inflight.max = cfg.MaxInFlightBytes
	s.reg.onNotSealed = func(id string, err error) {
		s.log.Error("device refused: its HMAC secret is not sealed under the device-registry key (minecart devices seal)", "device", id, "err", err)
	}
	if cfg.DeviceKey == nil {
		s.log.Warn("gateway without a device-registry key: every HMAC device is refused (Ed25519 devices only)")
	}
	return s, nil
}

// WaitDevices returns once the server's device table holds every device
// of ids (provisioned a moment ago: the table follows the devices topic
// asynchronously), or ctx's error.
func (s *Server) WaitDevices(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := s.table.Wait(ctx, id, func(_ []byte, ok bool) bool { return ok }); err != nil {
			return fmt.Errorf("device %s not in the gateway's table: %w", id, err)
		}
	}
	return nil
}

// Close stops following the device table and flushes and closes the
// producer.
func (s *Server) Close() error {
	return errors.Join(s.table.Close(), s.producer.Close())
}

// Handler serves POST /v1/telemetry, GET /healthz and GET /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/telemetry", s.telemetry)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

// readyz is 200 once the device table has caught up with the topic.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
		err := s.table.WaitCaught(ctx)
		cancel()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "not_ready", Message: "device table catching up: " + err.Error()})
			return
		}
		s.ready.Store(true)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "devices": s.table.Len()})
}

// Reject reasons of the gateway: the "error" field of its JSON answers and
// the "reason" label of minecart_gateway_rejects_total. Body and event
// problems use the telemetry reason codes (decode, too_many_events,
// missing_field, field_too_long, ...).
const (
	ReasonMissingAuth     = "missing_auth"      // 401: an authentication header is absent or malformed
	ReasonUnknownDevice   = "unknown_device"    // 401: no such device
	ReasonBadSignature    = "bad_signature"     // 401
	ReasonStaleTimestamp  = "stale_timestamp"   // 401: timestamp further than MaxSkew from now
	ReasonReplayedNonce   = "replayed_nonce"    // 401: nonce already used by this device
	ReasonRevoked         = "device_revoked"    // 403
	ReasonWrongVehicle    = "vehicle_mismatch"  // 403: an event for another vehicle, or another device id
	ReasonBodyTooLarge    = "body_too_large"    // 413
	ReasonUnsupportedType = "unsupported_media" // 415: neither application/json nor avro/binary
	ReasonEncoding        = "bad_encoding"      // 400/415: bad gzip, or an encoding other than gzip
	ReasonOverloaded      = "overloaded"        // 429: in-flight bytes at their bound
	ReasonRateLimited     = "rate_limited"      // 429: device over its event rate
	ReasonReplayCacheFull = "replay_cache_full" // 429: too many nonces in the window
	ReasonProduce         = "produce_failed"    // 503: Kafka did not acknowledge; nothing is acked
	ReasonRegistry        = "registry_error"    // 503: the device record does not decode
	ReasonNotSealed       = "secret_not_sealed" // 401: the HMAC secret on the topic is not sealed under the gateway's key
	ReasonNotReady        = "not_ready"         // 503: device table not caught up yet
)

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Index   *int   `json:"index,omitempty"` // the refused event's position in the batch
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// refusal is why a request is refused: its HTTP status, reason code and
// message (and, for a rate limit, when to retry).
type refusal struct {
	status     int
	reason     string
	err        error
	retryAfter int // seconds; 0: the configured RetryAfter for 429 and 503
}

func refuse(status int, reason string, err error) *refusal {
	return &refusal{status: status, reason: reason, err: err}
}

var errOverloaded = errors.New("gateway at its in-flight bound, retry later")

func overloaded() *refusal {
	return refuse(http.StatusTooManyRequests, ReasonOverloaded, errOverloaded)
}

func (s *Server) refuse(w http.ResponseWriter, f *refusal) {
	s.m.rejects.WithLabelValues(f.reason).Inc()
	body := errorBody{Error: f.reason, Message: f.err.Error()}
	var ie *telemetry.IndexError
	if errors.As(f.err, &ie) {
		body.Index = &ie.Index
	}
	switch {
	case f.retryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
	case f.status == http.StatusTooManyRequests || f.status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (s.cfg.RetryAfter+time.Second-1)/time.Second))))
	}
	writeJSON(w, f.status, body)
}

type acceptedBody struct {
	Accepted int `json:"accepted"`
}

// telemetry is POST /v1/telemetry: a signed batch of one device's events,
// taken in named steps (docs/ingest.md): wait for the device table, admit
// (headers, size, in-flight reservation), read the body, authenticate,
// inflate, decode, bind the events to the device, rate-limit, produce. A
// 202 means Kafka acknowledged every event.
func (s *Server) telemetry(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	q, f := s.admit(r)
	if f != nil {
		s.refuse(w, f)
		return
	}
	defer q.end()
	events, format, f := q.handle(r)
	if f != nil {
		s.refuse(w, f)
		return
	}
	s.m.batches.WithLabelValues(format).Inc()
	s.m.events.Add(float64(len(events)))
	s.m.bytes.Add(float64(q.wireBytes))
	s.m.latency.Observe(s.cfg.Now().Sub(start).Seconds())
	writeJSON(w, http.StatusAccepted, acceptedBody{Accepted: len(events)})
}

// request is one admitted POST /v1/telemetry: the in-flight bytes it holds
// and its pooled buffers, given back by end (or, after a produce timeout,
// once the Kafka client has let go of the records).
type request struct {
	s         *Server
	auth      [4]string // device, timestamp, nonce, signature headers
	held      int64
	buf       *reqBuf
	wireBytes int
	handedOff bool // the produce goroutine gives back held and buf
}

// admit waits for the device table, checks the authentication headers are
// there and the declared size is allowed, and reserves the in-flight bytes
// of the body (the declared length, or the most a body may be) before
// anything is read.
func (s *Server) admit(r *http.Request) (*request, *refusal) {
	if !s.ready.Load() {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		err := s.table.WaitCaught(ctx)
		cancel()
		if err != nil {
			return nil, refuse(http.StatusServiceUnavailable, ReasonNotReady, fmt.Errorf("device table catching up: %w", err))
		}
		s.ready.Store(true)
	}
	q := &request{s: s, auth: [4]string{r.Header.Get(HeaderDevice), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)}}
	for _, h := range q.auth {
		if h == "" {
			return nil, refuse(http.StatusUnauthorized, ReasonMissingAuth, errors.New("want headers "+HeaderDevice+", "+HeaderTimestamp+", "+HeaderNonce+", "+HeaderSignature))
		}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("body of %d bytes, limit %d", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	held := r.ContentLength
	if held < 0 {
		held = s.cfg.MaxBodyBytes
	}
	if !q.grow(held) {
		return nil, overloaded()
	}
	return q, nil
}

// grow reserves n more in-flight bytes for the request.
func (q *request) grow(n int64) bool {
	if !q.s.inflight.tryAcquire(n) {
		return false
	}
	q.held += n
	q.s.m.inflight.Add(float64(n))
	return true
}

// end gives back what the request holds, unless the produce goroutine
// still needs it.
func (q *request) end() {
	if !q.handedOff {
		q.release()
	}
}

func (q *request) release() {
	q.s.inflight.release(q.held)
	q.s.m.inflight.Sub(float64(q.held))
	if q.buf != nil {
		q.s.bufs.Put(q.buf)
	}
}

// handle runs the steps after admission; it returns the stored events and
// the body format.
func (q *request) handle(r *http.Request) ([]telemetry.Event, string, *refusal) {
	q.buf = q.s.getBuf()
	body, f := q.readBody(r.Body)
	if f != nil {
		return nil, "", f
	}
	// Authenticate before doing any work on the body.
	dev, status, reason, err := q.s.authenticate(q.auth[0], q.auth[1], q.auth[2], q.auth[3], body)
	if err != nil {
		return nil, "", refuse(status, reason, err)
	}
	if body, f = q.inflate(r.Header.Get("Content-Encoding"), body); f != nil {
		return nil, "", f
	}
	events, format, f := q.decode(r.Header.Get("Content-Type"), body)
	if f == nil {
		f = q.bind(dev, events)
	}
	if f == nil {
		f = q.s.rateLimit(dev, len(events))
	}
	if f == nil {
		f = q.produce(dev, events)
	}
	return events, format, f
}

// readBody reads the body as sent, within MaxBodyBytes.
func (q *request) readBody(r io.Reader) ([]byte, *refusal) {
	body, err := readLimited(r, q.s.cfg.MaxBodyBytes, q.buf.body[:0])
	q.buf.body = body[:0]
	q.wireBytes = len(body)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("body over %d bytes", q.s.cfg.MaxBodyBytes))
	case err != nil:
		return nil, refuse(http.StatusBadRequest, telemetry.CodeDecode, fmt.Errorf("read body: %w", err))
	}
	return body, nil
}

// inflate undoes the content encoding (gzip or none); the inflated bytes
// are reserved as they are produced, within MaxDecodedBytes.
func (q *request) inflate(encoding string, body []byte) ([]byte, *refusal) {
	switch encoding {
	case "", "identity":
		return body, nil
	case "gzip":
	default:
		return nil, refuse(http.StatusUnsupportedMediaType, ReasonEncoding, fmt.Errorf("content encoding %q: want gzip or none", encoding))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, ReasonEncoding, fmt.Errorf("gzip: %w", err))
	}
	inflated, err := readLimited(&budgetReader{r: zr, grow: q.grow}, q.s.cfg.MaxDecodedBytes, q.buf.inflated[:0])
	q.buf.inflated = inflated[:0]
	switch {
	case errors.Is(err, errOverBudget):
		return nil, overloaded()
	case errors.Is(err, errTooLarge):
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("inflated body over %d bytes", q.s.cfg.MaxDecodedBytes))
	case err != nil:
		return nil, refuse(http.StatusBadRequest, ReasonEncoding, fmt.Errorf("gzip: %w", err))
	}
	return inflated, nil
}

// decode reads the events of a JSON or Avro body.
func (q *request) decode(contentType string, body []byte) ([]telemetry.Event, string, *refusal) {
	var events []telemetry.Event
	var err error
	format := "json"
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/json", "":
		events, err = telemetry.DecodeJSON(body, q.s.cfg.Limits)
	case "avro/binary", "application/avro":
		format = "avro"
		events, err = q.s.codec.DecodeBatch(body, q.s.cfg.Limits)
	default:
		return nil, "", refuse(http.StatusUnsupportedMediaType, ReasonUnsupportedType, fmt.Errorf("content type %q: want application/json or avro/binary", mt))
	}
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, telemetry.CodeOf(err), err)
	}
	return events, format, nil
}

// bind fills the device, vehicle and zone of events that leave them empty
// and refuses an event for another device or vehicle; the decoded events
// are held too (about 256 bytes each).
func (q *request) bind(dev *Device, events []telemetry.Event) *refusal {
	for i := range events {
		ev := &events[i]
		if ev.DeviceID == "" {
			ev.DeviceID = dev.ID
		}
		if ev.VehicleID == "" {
			ev.VehicleID = dev.VehicleID
		}
		if ev.TZ == "" {
			ev.TZ = dev.VehicleTZ
		}
		if ev.DeviceID != dev.ID || ev.VehicleID != dev.VehicleID {
			return refuse(http.StatusForbidden, ReasonWrongVehicle, &telemetry.IndexError{Index: i,
				Err: fmt.Errorf("device %s is bound to vehicle %s; event is for device %s, vehicle %s", dev.ID, dev.VehicleID, ev.DeviceID, ev.VehicleID)})
		}
	}
	if !q.grow(int64(len(events)) * 256) {
		return overloaded()
	}
	return nil
}

// rateLimit takes n events from the device's token bucket.
func (s *Server) rateLimit(dev *Device, n int) *refusal {
	if s.cfg.DeviceRate <= 0 {
		return nil
	}
	if ok, wait := s.limiter.take(dev.ID, n, s.cfg.Now()); !ok {
		return &refusal{status: http.StatusTooManyRequests, reason: ReasonRateLimited,
			err: fmt.Errorf("device over %g events/s", s.cfg.DeviceRate), retryAfter: int(wait/time.Second) + 1}
	}
	return nil
}

// produce writes every event as its own record (one buffer for all) and
// waits for Kafka's acknowledgement. It produces in a goroutine so a slow
// Kafka gets a 503 after ProduceTimeout while the records' bytes stay
// counted (and the buffer unreused) until the client has really finished
// with them.
func (q *request) produce(dev *Device, events []telemetry.Event) *refusal {
	s, buf := q.s, q.buf
	vals, ends := buf.vals[:0], buf.ends[:0]
	for i := range events {
		vals = s.codec.AppendEvent(vals, &events[i])
		ends = append(ends, len(vals))
	}
	buf.vals, buf.ends = vals[:0], ends[:0]
	if !q.grow(int64(len(vals))) {
		return overloaded()
	}
	recs := buf.recs[:0]
	hdr := []pipelines.Header{{Key: "device", Value: []byte(dev.ID)}}
	key := []byte(dev.VehicleID)
	off := 0
	for _, end := range ends {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: key, Value: vals[off:end:end], Headers: hdr})
		off = end
	}
	buf.recs = recs[:0]
	pstart := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ProduceTimeout)
		defer cancel()
		done <- s.producer.ProduceBatch(ctx, recs)
	}()
	timer := time.NewTimer(s.cfg.ProduceTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		err = errors.New("no acknowledgement within the produce timeout")
		select {
		case err = <-done: // it ended meanwhile after all
		default:
			q.handedOff = true
			go func() {
				<-done
				q.release()
			}()
		}
	}
	s.m.produce.Observe(time.Since(pstart).Seconds())
	if err == nil {
		return nil
	}
	s.log.Warn("produce failed", "device", dev.ID, "events", len(events), "err", err)
	return refuse(http.StatusServiceUnavailable, ReasonProduce, errors.New("events not stored, retry the batch"))
}

// authenticate checks the device, its timestamp, signature and nonce, in
// that order (the nonce last, so unsigned requests cannot fill the cache).
func (s *Server) authenticate(device, ts, nonce, sigB64 string, body []byte) (*Device, int, string, error) {
	if !validNonce(nonce) {
		return nil, http.StatusUnauthorized, ReasonMissingAuth, errors.New(HeaderNonce + ": want 16..64 of [A-Za-z0-9_-]")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, http.StatusUnauthorized, ReasonMissingAuth, errors.New(HeaderTimestamp + ": want Unix seconds")
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return nil, http.StatusUnauthorized, ReasonMissingAuth, errors.New(HeaderSignature + ": want standard base64")
	}
	dev, ok, err := s.reg.lookup(device)
	if errors.Is(err, ErrNotSealed) {
		return nil, http.StatusUnauthorized, ReasonNotSealed, fmt.Errorf("device %q: secret not sealed", device)
	}
	if err != nil {
		s.log.Error("device record unreadable", "device", device, "err", err)
		return nil, http.StatusServiceUnavailable, ReasonRegistry, errors.New("device registry record unreadable")
	}
	if !ok {
		return nil, http.StatusUnauthorized, ReasonUnknownDevice, fmt.Errorf("device %q is not provisioned", device)
	}
	now := s.cfg.Now()
	if d := now.Sub(time.Unix(sec, 0)); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return nil, http.StatusUnauthorized, ReasonStaleTimestamp, fmt.Errorf("timestamp %d is %v from the gateway's clock, limit %v", sec, d.Round(time.Second), s.cfg.MaxSkew)
	}
	sum := sha256.Sum256(body)
	if !verify(dev, Canonical(device, ts, nonce, sum[:]), sig) {
		return nil, http.StatusUnauthorized, ReasonBadSignature, errors.New("signature does not verify")
	}
	if dev.Status != StatusActive {
		return nil, http.StatusForbidden, ReasonRevoked, fmt.Errorf("device %q is revoked", device)
	}
	switch s.nonces.use(device, nonce, now) {
	case nonceReplayed:
		return nil, http.StatusUnauthorized, ReasonReplayedNonce, errors.New("nonce already used")
	case nonceFull:
		return nil, http.StatusTooManyRequests, ReasonReplayCacheFull, errors.New("replay cache full, retry later")
	}
	return dev, 0, "", nil
}

var (
	errTooLarge   = errors.New("too large")
	errOverBudget = errors.New("in-flight budget spent")
)

// budgetReader reserves every byte it reads from the in-flight budget.
type budgetReader struct {
	r    io.Reader
	grow func(int64) bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && !b.grow(int64(n)) {
		return n, errOverBudget
	}
	return n, err
}

// readLimited reads r into dst, failing with errTooLarge past limit bytes.
func readLimited(r io.Reader, limit int64, dst []byte) ([]byte, error) {
	b := bytes.NewBuffer(dst)
	n, err := b.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return b.Bytes(), err
	}
	if n > limit {
		return b.Bytes(), errTooLarge
	}
	return b.Bytes(), nil
}

// reqBuf holds one request's buffers, pooled across requests.
type reqBuf struct {
	body, inflated, vals []byte
	ends                 []int
	recs                 []kafka.Output
}

func (s *Server) getBuf() *reqBuf {
	if b, ok := s.bufs.Get().(*reqBuf); ok {
		return b
	}
	return &reqBuf{}
}
