package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// MarkConfig configures the time marks a gateway writes (docs/ingest.md,
// "Time marks"). Zero fields take their defaults.
type MarkConfig struct {
	// ID names the gateway in its marks; it should stay the same across
	// restarts of one replica (default: the host name).
	ID string
	// Every is how often the marks are written when the intake clock moved
	// (default 1s).
	Every time.Duration
	// CatchUpRate bounds how fast the marks of a restarted gateway catch up
	// with its clock: from the last mark found in the log they advance at
	// most CatchUpRate times as fast as the clock, so boxes that buffered
	// through an outage get at least (day end + grace - last mark) /
	// CatchUpRate of intake time after the restart to upload before the day
	// closes (default 4; must be > 1).
	CatchUpRate float64
	// ReadBack is how many records of each raw partition the gateway reads
	// back from the end, at most, to find the last mark when it starts
	// (default 200,000; past it, the partition counts as unmarked and the
	// marks start at the clock).
	ReadBack int64
	// Clock is the intake clock (default Config.Now, the wall clock). The
	// simulated fleet drives it in `minecart run`. A zero time means "not
	// started": no mark is written.
	Clock func() time.Time
	// Partitions of the raw topic (default pipelines.TelemetryPartitions).
	Partitions int32
}

func (c MarkConfig) withDefaults(now func() time.Time) MarkConfig {
	if c.ID == "" {
		c.ID, _ = os.Hostname()
		if c.ID == "" {
			c.ID = "gateway"
		}
	}
	if c.Every == 0 {
		c.Every = time.Second
	}
	if c.CatchUpRate == 0 {
		c.CatchUpRate = 4
	}
	if c.ReadBack == 0 {
		c.ReadBack = 200_000
	}
	if c.Clock == nil {
		c.Clock = now
	}
	if c.Partitions == 0 {
		c.Partitions = pipelines.TelemetryPartitions
	}
	return c
}

// Validate reports a configuration NewMarker cannot use.
func (c MarkConfig) Validate() error {
	var errs []error
	if c.Every < 0 || c.ReadBack < 0 || c.Partitions < 0 {
		errs = append(errs, errors.New("gateway marks: negative Every, ReadBack or Partitions"))
	}
	if c.CatchUpRate != 0 && !(c.CatchUpRate > 1) {
		errs = append(errs, fmt.Errorf("gateway marks: catch-up rate %v must be > 1", c.CatchUpRate))
	}
	if len(c.ID) > 200 {
		errs = append(errs, errors.New("gateway marks: ID over 200 bytes"))
	}
	return errors.Join(errs...)
}

// Marker writes a gateway's time marks to every partition of the raw
// topic, with the gateway's producer, so that a mark is ordered with the
// events the gateway produces (one client appends to a partition in the
// order of its produce calls). Run writes them; Write writes them now.
type Marker struct {
	s   *Server
	cfg MarkConfig
	m   markMetrics

	mu      sync.Mutex
	base    []int64 // per partition: the last mark found in the log at start (-1: none)
	last    []int64 // per partition: the last mark written (or found)
	startMs int64   // the clock's first non-zero reading (0: not yet)
}

// NewMarker reads the last mark of every raw partition back from the log
// (marks restart from there, see MarkConfig.CatchUpRate) and returns the
// gateway's marker. Start its Run with the gateway.
func (s *Server) NewMarker(ctx context.Context, cfg MarkConfig) (*Marker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(s.cfg.Now)
	mm, err := newMarkMetrics(s.cfg.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Marker{s: s, cfg: cfg, m: mm, base: make([]int64, cfg.Partitions), last: make([]int64, cfg.Partitions)}
	rd, err := kafka.NewReader(s.cfg.Pipelines)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for p := range cfg.Partitions {
		t, err := lastMark(ctx, rd, s.cfg.Pipelines.Serde, p, cfg.ReadBack)
		if err != nil {
			return nil, fmt.Errorf("gateway marks: read back partition %d: %w", p, err)
		}
		m.base[p], m.last[p] = t, t
	}
	s.log.Info("gateway marks", "id", cfg.ID, "last_marks", m.base)
	return m, nil
}

// lastMark is the time of the last mark (of any gateway) on raw partition
// p within the last readBack records, or -1.
func lastMark(ctx context.Context, rd *kafka.Reader, serde *schemas.Serde, p int32, readBack int64) (int64, error) {
	end, err := rd.End(ctx, pipelines.TopicTelemetryRaw, p)
	if err != nil {
		return -1, err
	}
	found := int64(-1)
	for n, hi := int64(1024), end; hi > 0 && end-hi < readBack; n *= 8 {
		lo := max(0, hi-n, end-readBack)
		err := rd.Read(ctx, pipelines.TopicTelemetryRaw, p, lo, hi, func(r pipelines.Record) error {
			if !pipelines.IsMark(&r) {
				return nil
			}
			var tm avro.TimeMark
			if serde.Unmarshal(r.Value, &tm) == nil {
				found = max(found, tm.TimeMs.UnixMilli())
			}
			return nil
		})
		if err != nil || found >= 0 {
			return found, err
		}
		hi = lo
	}
	return found, nil
}

// At is the mark the marker writes on partition p when the intake clock
// reads now (Unix ms), having started at start with the last mark base
// (-1: none): the clock itself for an unmarked partition, else
// max(base, min(now, base + rate*(now - start))). A restart after a short
// pause is caught up at once; after a long outage the marks take
// (now - base) / (rate - 1) of clock time to catch up, which is the time
// boxes get to upload what they buffered before the days it covers close.
func At(base, start, now int64, rate float64) int64 {
	if base < 0 {
		return now
	}
	up := float64(base) + rate*float64(now-start)
	if up >= float64(now) || up >= math.MaxInt64 {
		return max(base, now)
	}
	return max(base, int64(up))
}

// Write writes one mark to every partition whose mark advanced since the
// last one written, and waits until Kafka acknowledged them. A zero clock
// writes nothing.
func (m *Marker) Write(ctx context.Context) error { return m.write(ctx, false) }

// Leave writes the gateway's last marks, flagged leaving: readers stop
// waiting for this gateway (a clean shutdown; a crashed gateway is dropped
// by readers once the others' marks are far enough ahead).
func (m *Marker) Leave(ctx context.Context) error { return m.write(ctx, true) }

func (m *Marker) write(ctx context.Context, leaving bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.cfg.Clock()
	if t.IsZero() {
		return nil
	}
	now := t.UnixMilli()
	if m.startMs == 0 {
		m.startMs = now
	}
	key := []byte(pipelines.MarkKeyPrefix + m.cfg.ID)
	var recs []kafka.Output
	var at []int64
	for p := range m.cfg.Partitions {
		mt := At(m.base[p], m.startMs, now, m.cfg.CatchUpRate)
		if mt <= m.last[p] && !leaving {
			at = append(at, m.last[p])
			continue
		}
		mt = max(mt, m.last[p])
		b, err := m.s.cfg.Pipelines.Serde.Marshal(&avro.TimeMark{Gateway: m.cfg.ID, Partition: p, TimeMs: time.UnixMilli(mt).UTC(), Leaving: leaving})
		if err != nil {
			return fmt.Errorf("encode mark: %w", err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: key, Value: b,
			Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p})
		at = append(at, mt)
	}
	if len(recs) == 0 {
		return nil
	}
	if err := m.s.producer.ProduceBatch(ctx, recs); err != nil {
		m.m.errors.Inc()
		return fmt.Errorf("write marks: %w", err)
	}
	copy(m.last, at)
	m.m.marks.Add(float64(len(recs)))
	m.m.time.Set(float64(slices.Min(at)))
	return nil
}

// Marks returns the last mark written (or found at start) on each
// partition, Unix ms (-1: none).
func (m *Marker) Marks() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int64(nil), m.last...)
}

// Run writes the marks every MarkConfig.Every until ctx is done. A failed
// write is logged and retried on the next tick (marks only move time
// forward; a missing one delays closes, it loses nothing).
func (m *Marker) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Every)
	defer t.Stop()
	for {
		if err := m.Write(ctx); err != nil && ctx.Err() == nil {
			m.s.log.Warn("gateway marks", "id", m.cfg.ID, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type markMetrics struct {
	marks, errors prometheus.Counter
	time          prometheus.Gauge
}

func newMarkMetrics(reg prometheus.Registerer) (markMetrics, error) {
	m := prom.NewMetrics(reg)
	return markMetrics{
		marks:  m.Counter("minecart_gateway_marks_total", "Time marks written to the raw telemetry partitions."),
		errors: m.Counter("minecart_gateway_mark_errors_total", "Writes of time marks that Kafka did not acknowledge (retried on the next tick)."),
		time:   m.Gauge("minecart_gateway_mark_time_ms", "The lowest time mark this gateway wrote last, Unix ms."),
	}, m.Err()
}
