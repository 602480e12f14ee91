// Package gateway is the device-facing HTTP service: boxes POST batches of
// telemetry events (JSON or Avro, optionally gzip), signed with their
// device credential (HMAC-SHA256 or Ed25519). The gateway authenticates the
// device against the registry (the compacted topic pipelines.TopicDevices),
// checks it writes only for its own vehicle, and produces every event as
// its own Avro record to pipelines.TopicTelemetryRaw. It answers 202 only
// after Kafka acknowledged every record (acks=all, idempotent), and bounds
// what it holds: in-flight bytes reserved as they arrive (429 when
// exceeded), per device and for bodies not yet verified, body, inflated and
// batch sizes (413/400), body read time (408), per-device event rate (429).
// A request is authenticated as far as its headers allow (known, active
// device, fresh timestamp, unused nonce, well-formed signature) before any
// byte of its body is read.
package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// MaxDecodedBytes bounds a gzip body once inflated, counted while
	// inflating (default 32 MiB).
	MaxDecodedBytes int64
	// MaxInFlightBytes bounds the bytes of all requests being handled
	// (bodies as they arrive, inflated bodies, decoded events, encoded
	// records, their buffers' capacity); beyond it requests get 429
	// overloaded with Retry-After (default 256 MiB).
	MaxInFlightBytes int64
	// MaxDeviceBytes bounds the bytes of one device's requests together
	// (default MaxInFlightBytes/4, at least MaxDeviceUnverifiedBytes);
	// beyond it the device gets 429 device_busy.
	MaxDeviceBytes int64
	// MaxDeviceUnverifiedBytes bounds the body bytes of one device's
	// requests whose signature is not verified yet: what a client that
	// knows a device id but not its key can make the gateway hold (default
	// MaxBodyBytes; at least MaxBodyBytes). Beyond it: 429 device_busy.
	MaxDeviceUnverifiedBytes int64
	// BodyTimeout bounds reading a request's body, from the end of its
	// headers (default 30s); past it the request gets 408 body_timeout and
	// its bytes are released.
	BodyTimeout time.Duration
	// MaxSkew is how far a request's timestamp may be from now (default 5m).
	MaxSkew time.Duration
	// MaxNonces bounds the replay cache: nonces are kept until their
	// timestamp plus MaxSkew has passed; when the cache holds MaxNonces,
	// requests get 429 replay_cache_full (default 4M).
	MaxNonces int
	// MaxDeviceNonces bounds one device's share of the replay cache: a
	// device holding that many gets 429 replay_cache_full (default
	// MaxNonces/64 = 65,536: ~218 requests/s sustained by a device whose
	// clock agrees with the gateway's, with the default MaxSkew).
	MaxDeviceNonces int
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
		c.MaxDecodedBytes = 32 << 20
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 256 << 20
	}
	if c.MaxDeviceUnverifiedBytes == 0 {
		c.MaxDeviceUnverifiedBytes = c.MaxBodyBytes
	}
	if c.MaxDeviceBytes == 0 {
		c.MaxDeviceBytes = max(c.MaxInFlightBytes/4, c.MaxDeviceUnverifiedBytes)
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if c.MaxNonces == 0 {
		c.MaxNonces = 4 << 20
	}
	if c.MaxDeviceNonces == 0 {
		c.MaxDeviceNonces = max(c.MaxNonces/64, 1)
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
		c.MaxNonces < 0 || c.DeviceBurst < 0 || c.ProduceTimeout < 0 || c.RetryAfter < 0 ||
		c.MaxDeviceBytes < 0 || c.MaxDeviceUnverifiedBytes < 0 || c.BodyTimeout < 0 || c.MaxDeviceNonces < 0 {
		return errors.New("gateway: negative limit")
	}
	d := c.withDefaults()
	switch {
	case d.MaxDeviceUnverifiedBytes < d.MaxBodyBytes:
		return fmt.Errorf("gateway: max device unverified bytes %d below max body bytes %d", d.MaxDeviceUnverifiedBytes, d.MaxBodyBytes)
	case d.MaxDeviceBytes < d.MaxDeviceUnverifiedBytes:
		return fmt.Errorf("gateway: max device bytes %d below max device unverified bytes %d", d.MaxDeviceBytes, d.MaxDeviceUnverifiedBytes)
	case d.MaxInFlightBytes < d.MaxDeviceBytes:
		return fmt.Errorf("gateway: max in-flight bytes %d below max device bytes %d", d.MaxInFlightBytes, d.MaxDeviceBytes)
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
	holds    *holds
	nonces   *nonces
	limiter  *limiter
	m        *metrics
	ready    atomic.Bool
	bufs     *bufPool
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
		nonces:  newNonces(cfg.MaxSkew, cfg.MaxNonces, cfg.MaxDeviceNonces),
		limiter: &limiter{rate: cfg.DeviceRate, burst: float64(cfg.DeviceBurst), buckets: map[string]*bucket{}},
		holds:   &holds{maxTotal: cfg.MaxDeviceBytes, maxUnverified: cfg.MaxDeviceUnverifiedBytes, m: map[string]*hold{}},
		bufs:    &bufPool{maxBufs: poolBuffers, maxBytes: min(poolBufferBytes, cfg.MaxBodyBytes)},
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
	ReasonMissingAuth     = "missing_auth"      // 401: an authentication header is absent, repeated or malformed
	ReasonUnknownDevice   = "unknown_device"    // 401: no such device
	ReasonBadSignature    = "bad_signature"     // 401
	ReasonStaleTimestamp  = "stale_timestamp"   // 401: timestamp further than MaxSkew from now
	ReasonReplayedNonce   = "replayed_nonce"    // 401: nonce already used by this device
	ReasonRevoked         = "device_revoked"    // 403
	ReasonWrongVehicle    = "vehicle_mismatch"  // 403: an event for another vehicle, or another device id
	ReasonBodyTooLarge    = "body_too_large"    // 413
	ReasonUnsupportedType = "unsupported_media" // 415: Content-Type not exactly one of the accepted media types
	ReasonEncoding        = "bad_encoding"      // 400/415: bad gzip, or an encoding other than gzip
	ReasonBodyTimeout     = "body_timeout"      // 408: the body did not arrive within BodyTimeout
	ReasonOverloaded      = "overloaded"        // 429: in-flight bytes at their bound
	ReasonDeviceBusy      = "device_busy"       // 429: the device's requests hold MaxDeviceBytes (or MaxDeviceUnverifiedBytes unverified)
	ReasonRateLimited     = "rate_limited"      // 429: device over its event rate
	ReasonReplayCacheFull = "replay_cache_full" // 429: the replay cache, or the device's share of it, is full
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

func deviceBusy() *refusal {
	return refuse(http.StatusTooManyRequests, ReasonDeviceBusy, errors.New("the device's requests hold their bound of bytes, retry later"))
}

// refuse answers f. Unless the whole body was read, the connection is
// closed after the answer: the server neither waits for nor discards the
// rest of a body that may never come.
func (s *Server) refuse(w http.ResponseWriter, f *refusal, bodyRead bool) {
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
	if !bodyRead {
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, f.status, body)
}

type acceptedBody struct {
	Accepted int `json:"accepted"`
}

// telemetry is POST /v1/telemetry: a signed batch of one device's events,
// taken in named steps (docs/ingest.md): wait for the device table, admit
// (headers, media type, size, device, timestamp, nonce: nothing of the body
// is read or reserved before), read the body reserving its bytes as they
// arrive, verify the signature, record the nonce, inflate, decode, bind the
// events to the device, rate-limit, produce. A 202 means Kafka
// acknowledged every event.
func (s *Server) telemetry(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	q, f := s.admit(w, r)
	if f != nil {
		s.refuse(w, f, false)
		return
	}
	defer q.end()
	n, f := q.handle(r)
	if f != nil {
		s.refuse(w, f, q.bodyRead)
		return
	}
	s.m.batches.WithLabelValues(q.format).Inc()
	s.m.events.Add(float64(n))
	s.m.bytes.Add(float64(q.wireBytes))
	s.m.latency.Observe(s.cfg.Now().Sub(start).Seconds())
	writeAccepted(w, n)
}

// jsonContentType is the Content-Type header's value of the 202 answers
// (shared, never modified).
var jsonContentType = []string{"application/json"}

// writeAccepted answers 202 with {"accepted":n}, as writeJSON would
// encode acceptedBody, without its reflection and allocations.
func writeAccepted(w http.ResponseWriter, n int) {
	var b [32]byte
	out := append(b[:0], `{"accepted":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(out)
}

// request is one admitted POST /v1/telemetry: its device, the in-flight
// bytes it holds (of them, the unverified body bytes) and its buffers,
// given back by end (or, after a produce timeout, once the Kafka client
// has let go of the records).
type request struct {
	s          *Server
	rc         *http.ResponseController
	auth       authHeaders
	dev        *Device
	format     string // "json" or "avro"
	gzip       bool
	held       int64
	unverified int64 // of held: body bytes whose signature is not verified yet
	verified   bool
	buf        *reqBuf
	wireBytes  int
	bodyRead   bool
	handedOff  bool // the produce goroutine gives back held and buf
}

// admit waits for the device table, bounds the body's read time, and
// checks everything the headers tell before a byte of the body is read or
// reserved: the authentication headers are well-formed, the media type and
// encoding accepted, the declared size allowed, the device known and
// active, the timestamp within MaxSkew, the nonce unused.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (*request, *refusal) {
	if !s.ready.Load() {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		err := s.table.WaitCaught(ctx)
		cancel()
		if err != nil {
			return nil, refuse(http.StatusServiceUnavailable, ReasonNotReady, fmt.Errorf("device table catching up: %w", err))
		}
		s.ready.Store(true)
	}
	q := &request{s: s, rc: http.NewResponseController(w)}
	// The deadline is wall-clock time (Config.Now is the protocol's clock).
	// ErrNotSupported (a wrapped ResponseWriter): the server's ReadTimeout
	// still bounds the body.
	_ = q.rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	a, err := parseAuth(r.Header)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, ReasonMissingAuth, err)
	}
	q.auth = a
	if q.format, err = mediaType(r.Header); err != nil {
		return nil, refuse(http.StatusUnsupportedMediaType, ReasonUnsupportedType, err)
	}
	if q.gzip, err = contentEncoding(r.Header); err != nil {
		return nil, refuse(http.StatusUnsupportedMediaType, ReasonEncoding, err)
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("body of %d bytes, limit %d", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	dev, ok, err := s.reg.lookup(a.device)
	if errors.Is(err, ErrNotSealed) {
		return nil, refuse(http.StatusUnauthorized, ReasonNotSealed, fmt.Errorf("device %q: secret not sealed", a.device))
	}
	if err != nil {
		s.log.Error("device record unreadable", "device", a.device, "err", err)
		return nil, refuse(http.StatusServiceUnavailable, ReasonRegistry, errors.New("device registry record unreadable"))
	}
	if !ok {
		return nil, refuse(http.StatusUnauthorized, ReasonUnknownDevice, fmt.Errorf("device %q is not provisioned", a.device))
	}
	now := s.cfg.Now()
	if d := now.Sub(time.Unix(a.unix, 0)); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		return nil, refuse(http.StatusUnauthorized, ReasonStaleTimestamp, fmt.Errorf("timestamp %d is %v from the gateway's clock, limit %v", a.unix, d.Round(time.Second), s.cfg.MaxSkew))
	}
	if dev.Status != StatusActive {
		return nil, refuse(http.StatusForbidden, ReasonRevoked, fmt.Errorf("device %q is revoked", a.device))
	}
	if s.nonces.seen(a.device, a.nonce, now) {
		return nil, refuse(http.StatusUnauthorized, ReasonReplayedNonce, errors.New("nonce already used"))
	}
	q.dev = dev
	return q, nil
}

// mediaType returns the body format of the Content-Type header: absent is
// JSON; otherwise exactly one header whose media type (mime.ParseMediaType)
// is application/json, with at most the parameter charset=utf-8, or
// avro/binary or application/avro without parameters. Anything else is an
// error (415).
func mediaType(h http.Header) (string, error) {
	v := h.Values("Content-Type")
	if len(v) == 0 {
		return "json", nil
	}
	const want = "want application/json or avro/binary"
	if len(v) == 1 { // the exact forms boxes send, without parsing
		switch v[0] {
		case "application/json", "application/json; charset=utf-8":
			return "json", nil
		case "avro/binary", "application/avro":
			return "avro", nil
		}
	}
	if len(v) > 1 {
		return "", errors.New("more than one Content-Type: " + want)
	}
	mt, params, err := mime.ParseMediaType(v[0])
	if err != nil {
		return "", fmt.Errorf("content type %q: %w: %s", v[0], err, want)
	}
	switch mt {
	case "application/json":
		for k, val := range params {
			if k != "charset" || !strings.EqualFold(val, "utf-8") {
				return "", fmt.Errorf("content type %q: only the parameter charset=utf-8 is accepted", v[0])
			}
		}
		return "json", nil
	case "avro/binary", "application/avro":
		if len(params) > 0 {
			return "", fmt.Errorf("content type %q: no parameters accepted", v[0])
		}
		return "avro", nil
	}
	return "", fmt.Errorf("content type %q: %s", v[0], want)
}

// contentEncoding tells whether the body is gzip: absent, "identity" or
// "gzip" (one header, one coding, any case); anything else is an error.
func contentEncoding(h http.Header) (bool, error) {
	v := h.Values("Content-Encoding")
	switch {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && strings.EqualFold(v[0], "identity"):
		return false, nil
	case len(v) == 1 && strings.EqualFold(v[0], "gzip"):
		return true, nil
	}
	return false, fmt.Errorf("content encoding %q: want gzip or none", strings.Join(v, ", "))
}

// grow reserves n more in-flight bytes for the request, from the device's
// bound and the server's; unverified bytes count against the device's
// bound of unverified bytes too until the signature is verified.
func (q *request) grow(n int64) *refusal {
	if n <= 0 {
		return nil
	}
	unverified := !q.verified
	if !q.s.inflight.tryAcquire(n) {
		return overloaded()
	}
	if !q.s.holds.acquire(q.dev.ID, n, unverified) {
		q.s.inflight.release(n)
		return deviceBusy()
	}
	q.held += n
	if unverified {
		q.unverified += n
	}
	q.s.m.inflight.Add(float64(n))
	return nil
}

// end gives back what the request holds, unless the produce goroutine
// still needs it.
func (q *request) end() {
	if !q.handedOff {
		q.release()
	}
}

func (q *request) release() {
	if q.held > 0 {
		q.s.inflight.release(q.held)
		q.s.holds.release(q.dev.ID, q.held, q.unverified)
		q.s.m.inflight.Sub(float64(q.held))
	}
	if q.buf != nil {
		q.s.bufs.put(q.buf)
	}
}

// handle runs the steps after admission; it returns how many events
// were stored.
func (q *request) handle(r *http.Request) (int, *refusal) {
	body, f := q.readBody(r.Body, r.ContentLength)
	if f != nil {
		return 0, f
	}
	if f := q.s.verify(q.dev, q.auth, body); f != nil {
		return 0, f
	}
	q.s.holds.verified(q.dev.ID, q.unverified)
	q.verified, q.unverified = true, 0
	// The rest of the pooled buffer is reserved now, as verified bytes.
	if f := q.grow(int64(q.buf.size() - cap(q.buf.body))); f != nil {
		return 0, f
	}
	expiry := time.Unix(q.auth.unix, 0).Add(q.s.cfg.MaxSkew)
	switch q.s.nonces.use(q.dev.ID, q.auth.nonce, expiry, q.s.cfg.Now()) {
	case nonceReplayed:
		return 0, refuse(http.StatusUnauthorized, ReasonReplayedNonce, errors.New("nonce already used"))
	case nonceFull:
		return 0, refuse(http.StatusTooManyRequests, ReasonReplayCacheFull, errors.New("replay cache full, retry later"))
	}
	if body, f = q.inflate(body); f != nil {
		return 0, f
	}
	var n int
	if q.format == "avro" {
		n, f = q.transcode(body)
	} else {
		var events []telemetry.Event
		events, f = q.decode(body)
		if f == nil {
			f = q.bind(events)
		}
		if f == nil {
			f = q.encode(events)
		}
		n = len(events)
	}
	if f == nil {
		f = q.s.rateLimit(q.dev, n)
	}
	if f == nil {
		f = q.produce()
	}
	return n, f
}

// readBody reads the body as sent, within MaxBodyBytes and BodyTimeout.
// Its buffer is taken (from the pool) when the first byte arrives, and
// its capacity is reserved before it is allocated, as bytes arrive: a
// client that declares a large body and sends nothing holds nothing.
func (q *request) readBody(r io.Reader, declared int64) ([]byte, *refusal) {
	limit := q.s.cfg.MaxBodyBytes
	if declared >= 0 {
		limit = declared // the server ends the body there
	}
	var first [1]byte
	n, err := io.ReadFull(r, first[:])
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		q.bodyRead = true
	case err != nil:
		return nil, q.readError(err)
	}
	q.buf = q.s.bufs.get()
	if f := q.grow(int64(cap(q.buf.body))); f != nil {
		return nil, f
	}
	body := append(q.buf.body[:0], first[:n]...) // within cap unless cap 0
	if cap(body) != cap(q.buf.body) {
		if f := q.grow(int64(cap(body) - cap(q.buf.body))); f != nil {
			return nil, f
		}
	}
	if !q.bodyRead {
		body, err = fill(body, r, limit, q.grow)
		q.bodyRead = err == nil
	}
	q.buf.body = body[:0]
	q.wireBytes = len(body)
	if err != nil {
		return nil, q.readError(err)
	}
	// The body is in: lift the read deadline (the server's own deadlines
	// apply again from the next request on the connection).
	_ = q.rc.SetReadDeadline(time.Time{})
	return body, nil
}

func (q *request) readError(err error) *refusal {
	var f *refusal
	var ne net.Error
	switch {
	case errors.As(err, &f):
		return f
	case errors.Is(err, errTooLarge):
		return refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("body over %d bytes", q.s.cfg.MaxBodyBytes))
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return refuse(http.StatusRequestTimeout, ReasonBodyTimeout, fmt.Errorf("body not received within %v", q.s.cfg.BodyTimeout))
	}
	return refuse(http.StatusBadRequest, telemetry.CodeDecode, fmt.Errorf("read body: %w", err))
}

// verify checks the request's signature over body with the device's key.
func (s *Server) verify(dev *Device, a authHeaders, body []byte) *refusal {
	sum := sha256.Sum256(body)
	if !verify(dev, Canonical(a.device, a.timestamp, a.nonce, sum[:]), a.sig) {
		return refuse(http.StatusUnauthorized, ReasonBadSignature, errors.New("signature does not verify"))
	}
	return nil
}

// inflate undoes the content encoding (gzip or none); the inflated bytes
// are counted while inflating and their buffer's capacity reserved before
// it is allocated, within MaxDecodedBytes.
func (q *request) inflate(body []byte) ([]byte, *refusal) {
	if !q.gzip {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, ReasonEncoding, fmt.Errorf("gzip: %w", err))
	}
	inflated, err := fill(q.buf.inflated[:0], zr, q.s.cfg.MaxDecodedBytes, q.grow)
	q.buf.inflated = inflated[:0]
	var f *refusal
	switch {
	case errors.As(err, &f):
		return nil, f
	case errors.Is(err, errTooLarge):
		return nil, refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, fmt.Errorf("inflated body over %d bytes", q.s.cfg.MaxDecodedBytes))
	case err != nil:
		return nil, refuse(http.StatusBadRequest, ReasonEncoding, fmt.Errorf("gzip: %w", err))
	}
	return inflated, nil
}

// decode reads the events of a JSON body into the request's pooled
// events.
func (q *request) decode(body []byte) ([]telemetry.Event, *refusal) {
	before := q.buf.size()
	events, err := telemetry.DecodeJSONInto(q.buf.events, body, q.s.cfg.Limits)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, telemetry.CodeOf(err), err)
	}
	q.buf.events = events
	return events, q.grow(int64(q.buf.size() - before)) // the slice's growth (bind reserves the events' contents)
}

// transcode is decode, bind and encode for an Avro body in one pass
// (wire.Codec.TranscodeBatch): the same checks and refusals, but the
// events' values are written straight from the body's bytes into the
// request's buffer, never decoded into Go values. It returns the number
// of events.
func (q *request) transcode(body []byte) (int, *refusal) {
	s, buf, dev := q.s, q.buf, q.dev
	before := buf.size()
	vals, ends, mis, err := s.codec.TranscodeBatch(buf.vals[:0], buf.ends[:0], body, s.cfg.Limits,
		telemetry.Stamp{DeviceID: dev.ID, VehicleID: dev.VehicleID, TZ: dev.VehicleTZ})
	buf.vals, buf.ends = vals, ends
	if err != nil {
		return 0, refuse(http.StatusBadRequest, telemetry.CodeOf(err), err)
	}
	if mis != nil {
		return 0, wrongVehicle(dev, mis.Index, mis.DeviceID, mis.VehicleID)
	}
	return len(ends), q.grow(int64(buf.size() - before))
}

func wrongVehicle(dev *Device, i int, device, vehicle string) *refusal {
	return refuse(http.StatusForbidden, ReasonWrongVehicle, &telemetry.IndexError{Index: i,
		Err: fmt.Errorf("device %s is bound to vehicle %s; event is for device %s, vehicle %s", dev.ID, dev.VehicleID, device, vehicle)})
}

// bind fills the device, vehicle and zone of events that leave them empty
// and refuses an event for another device or vehicle; the decoded events
// are held too (about 256 bytes each).
func (q *request) bind(events []telemetry.Event) *refusal {
	dev := q.dev
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
			return wrongVehicle(dev, i, ev.DeviceID, ev.VehicleID)
		}
	}
	return q.grow(int64(len(events)) * 256)
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

// encode writes every event's framed Avro value into the request's
// buffer (vals, one end offset per event) and reserves what it grew.
func (q *request) encode(events []telemetry.Event) *refusal {
	s, buf := q.s, q.buf
	before := buf.size()
	vals, ends := buf.vals[:0], buf.ends[:0]
	for i := range events {
		vals = s.codec.AppendEvent(vals, &events[i])
		ends = append(ends, len(vals))
	}
	buf.vals, buf.ends = vals, ends
	return q.grow(int64(buf.size() - before))
}

// produce writes every value of the request's buffer as its own record
// (keyed by the vehicle, with the device header) and waits for Kafka's
// acknowledgement. It produces in a goroutine so a slow Kafka gets a 503
// after ProduceTimeout while the records' bytes stay counted (and the
// buffer unreused) until the client has really finished with them.
func (q *request) produce() *refusal {
	s, buf, dev := q.s, q.buf, q.dev
	before := buf.size()
	vals, ends := buf.vals, buf.ends
	recs := slices.Grow(buf.recs[:0], len(ends))
	buf.recs = recs
	if f := q.grow(int64(buf.size() - before)); f != nil {
		return f
	}
	hdr := []pipelines.Header{{Key: "device", Value: []byte(dev.ID)}}
	key := []byte(dev.VehicleID)
	off := 0
	for _, end := range ends {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: key, Value: vals[off:end:end], Headers: hdr})
		off = end
	}
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
	s.log.Warn("produce failed", "device", dev.ID, "events", len(ends), "err", err)
	return refuse(http.StatusServiceUnavailable, ReasonProduce, errors.New("events not stored, retry the batch"))
}

var errTooLarge = errors.New("too large")

// fillMinGrow is the smallest capacity fill allocates.
const fillMinGrow = 32 << 10

// fill reads r to its end, appending to dst. When dst is full it grows
// (doubling, at least fillMinGrow, at most limit bytes of capacity),
// calling grow with the added capacity before allocating it; a refusal
// from grow ends the read with that *refusal as the error. More than
// limit bytes is errTooLarge: at most limit bytes are ever held, plus
// the one byte read to find out.
func fill(dst []byte, r io.Reader, limit int64, grow func(int64) *refusal) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			if int64(len(dst)) >= limit {
				var one [1]byte
				for {
					n, err := r.Read(one[:])
					if n > 0 {
						return dst, errTooLarge
					}
					if err == io.EOF {
						return dst, nil
					}
					if err != nil {
						return dst, err
					}
				}
			}
			c := min(max(2*int64(cap(dst)), fillMinGrow), limit)
			if f := grow(c - int64(cap(dst))); f != nil {
				return dst, f
			}
			nb := make([]byte, len(dst), c)
			copy(nb, dst)
			dst = nb
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// Error makes a refusal an error (fill's grow returns one).
func (f *refusal) Error() string { return f.reason + ": " + f.err.Error() }

// The buffer pool: at most poolBuffers request buffers of at most
// poolBufferBytes each (and never above MaxBodyBytes), so what it keeps
// between requests is bounded (32 MiB); a larger buffer is left to the GC.
const (
	poolBuffers     = 32
	poolBufferBytes = 1 << 20
)

// reqBuf holds one request's buffers, pooled across requests.
type reqBuf struct {
	body, inflated, vals []byte
	ends                 []int
	recs                 []kafka.Output
	events               []telemetry.Event // a JSON body's, decoded
}

const (
	outputSize = int(unsafe.Sizeof(kafka.Output{}))
	eventSize  = int(unsafe.Sizeof(telemetry.Event{}))
)

// size is the bytes the buffer's slices hold (their capacity).
func (b *reqBuf) size() int {
	return cap(b.body) + cap(b.inflated) + cap(b.vals) + cap(b.ends)*int(unsafe.Sizeof(0)) + cap(b.recs)*outputSize +
		cap(b.events)*eventSize
}

type bufPool struct {
	mu       sync.Mutex
	maxBufs  int
	maxBytes int64
	free     []*reqBuf
}

func (p *bufPool) get() *reqBuf {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return &reqBuf{}
}

func (p *bufPool) put(b *reqBuf) {
	if int64(b.size()) > p.maxBytes {
		return
	}
	clear(b.recs[:cap(b.recs)]) // let go of keys, values and headers
	b.recs = b.recs[:0]
	clear(b.events[:cap(b.events)]) // and of the events' strings
	b.events = b.events[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.maxBufs {
		p.free = append(p.free, b)
	}
}
