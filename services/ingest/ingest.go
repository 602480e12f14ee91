// Package ingest is the stage between the gateway and everything
// downstream: it consumes pipelines.TopicTelemetryRaw, validates every
// event (schema, physical sense, time bounds), drops repeats of
// re-uploaded events, and writes the rest, normalised, to
// pipelines.TopicTelemetryClean keyed by vehicle id; an event whose
// odometer contradicts the vehicle's newest reading is written with the
// header HeaderOdometer, not refused. Bad events are
// rejected with a reason code (docs/ingest.md) and dead-lettered by the
// runtime with their original bytes. The de-duplication state lives in
// memory per task and in the compacted changelog
// pipelines.TopicIngestChangelog: one record per vehicle per batch.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Config configures the ingest stage. Zero fields take their defaults.
type Config struct {
	// Name is the stage name: consumer group and transactional id prefix
	// (default "ingest").
	Name string
	// Validation sets the physical limits and time bounds. MaxAge > 0
	// also lets the stage forget vehicles idle for longer than MaxAge.
	Validation telemetry.ValidateConfig
	// Dedup bounds the de-duplication state per vehicle.
	Dedup telemetry.DedupConfig
	// Serde frames the clean records (default schemas.SingleObject()).
	Serde *schemas.Serde
	// Now is the clock events are validated against (default time.Now).
	Now func() time.Time
	// TickEvery is how often idle vehicles are forgotten (default 1m; only
	// with Validation.MaxAge > 0).
	TickEvery time.Duration
	// Registerer receives the stage's own metrics (duplicates, vehicles in
	// memory); the runtime's come from kafka.Config.
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if err := c.Validation.Validate(); err != nil {
		return err
	}
	if err := c.Dedup.Validate(); err != nil {
		return err
	}
	if c.TickEvery < 0 {
		return errors.New("ingest: negative tick interval")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "ingest"
	}
	c.Validation = c.Validation.Defaults()
	c.Dedup = c.Dedup.Defaults()
	if c.Serde == nil {
		c.Serde = schemas.SingleObject()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TickEvery == 0 {
		c.TickEvery = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewStage returns the ingest stage for kafka.Run.
func NewStage(cfg Config) (pipelines.Stage, error) {
	if err := cfg.Validate(); err != nil {
		return pipelines.Stage{}, err
	}
	cfg = cfg.withDefaults()
	codec, err := wire.NewCodec(cfg.Serde)
	if err != nil {
		return pipelines.Stage{}, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return pipelines.Stage{}, err
	}
	st := pipelines.Stage{
		Name:      cfg.Name,
		Inputs:    []string{pipelines.TopicTelemetryRaw},
		Changelog: pipelines.TopicIngestChangelog,
		// The processors of different tasks share only read-only
		// configuration, the codec and Prometheus metrics.
		Parallel: true,
		NewProcessor: func(_ context.Context, t pipelines.Task) (pipelines.Processor, error) {
			return &Processor{cfg: cfg, task: t, codec: codec, dec: codec.NewDecoder(0), m: m,
				dedup: telemetry.NewDedup(cfg.Dedup), dirty: map[string]struct{}{}, dirtyGen: 1}, nil
		},
	}
	if cfg.Validation.MaxAge > 0 {
		st.TickEvery = cfg.TickEvery
	}
	return st, nil
}

// CodeDeviceMismatch: the record's "device" header (set by the gateway
// from the authenticated device) names another device than the event.
const CodeDeviceMismatch = "device_mismatch"

// Processor is the ingest processor of one task (one partition of the raw
// topic and of the changelog).
type Processor struct {
	cfg   Config
	task  pipelines.Task
	codec *wire.Codec
	dec   *wire.Decoder // the task's own: ids interned, event id aliasing the value
	m     *metrics
	dedup *telemetry.Dedup
	dirty map[string]struct{} // vehicles changed since the last Flush
	// dirtyNear remembers the vehicles put in dirty lately, by the address
	// of their (interned) id, so that a vehicle's later events skip the
	// map; an entry counts while its gen is dirtyGen, which Flush and Tick
	// advance (telemetry.Dedup's near table, the same reasoning).
	dirtyNear [dirtyNearLen]dirtyEntry
	dirtyGen  uint32

	scratch []byte              // the clean encoding, compared with the raw value
	snapLen int                 // changelog bytes per vehicle in the last Flush
	hdr     [2]pipelines.Header // the clean record's headers (Emit copies them)
}

var (
	_ pipelines.Restorer = (*Processor)(nil)
	_ pipelines.Flusher  = (*Processor)(nil)
	_ pipelines.Ticker   = (*Processor)(nil)
)

// Process validates, de-duplicates and writes one raw event, or forwards
// one time mark.
func (p *Processor) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if pipelines.IsMark(&rec) {
		return p.forwardMark(rec, out)
	}
	ev, err := p.dec.DecodeEvent(rec.Value, p.cfg.Validation.Limits)
	if err != nil {
		var te *telemetry.Error
		if errors.Is(err, wire.ErrSchema) || errors.As(err, &te) {
			return pipelines.Reject(telemetry.CodeOf(err), err)
		}
		return err // a registry that cannot be reached: retried
	}
	if string(rec.Key) != ev.VehicleID {
		return pipelines.Reject(telemetry.CodeVehicleMismatch, fmt.Errorf("record key %q, event vehicle %q", rec.Key, ev.VehicleID))
	}
	device := rec.Header("device")
	if device != nil && string(device) != ev.DeviceID {
		return pipelines.Reject(CodeDeviceMismatch, fmt.Errorf("header device %q, event device %q", device, ev.DeviceID))
	}
	if err := telemetry.Validate(&ev, p.cfg.Now(), p.cfg.Validation); err != nil {
		return pipelines.Reject(telemetry.CodeOf(err), err)
	}
	telemetry.Normalize(&ev)
	verdict, err := p.dedup.Check(&ev)
	var odoMark []byte
	switch {
	case err == nil:
	case telemetry.CodeOf(err) == telemetry.CodeOdometerDecreased && verdict == telemetry.New:
		// Written, marked with the reading it contradicts: scoring flags the
		// day and keeps its driving (docs/ingest.md, "Odometer marks").
		w := p.dedup.Window(ev.VehicleID)
		odoMark = AppendOdometerMark(nil, w.OdoMs, w.OdoKm)
	default:
		return pipelines.Reject(telemetry.CodeOf(err), err)
	}
	if verdict == telemetry.Duplicate {
		p.m.duplicates.Inc()
		return nil
	}
	if odoMark != nil {
		p.m.odometer.Inc()
	}
	known := p.dedup.Len()
	p.dedup.Add(&ev)
	if p.dedup.Len() > known {
		p.m.vehicles.Inc()
	}
	p.markDirty(ev.VehicleID)
	hdr := p.hdr[:0]
	if device != nil {
		hdr = append(hdr, pipelines.Header{Key: "device", Value: device})
	}
	if odoMark != nil {
		hdr = append(hdr, pipelines.Header{Key: HeaderOdometer, Value: odoMark})
	}
	out.Emit(pipelines.TopicTelemetryClean, rec.Key, p.clean(rec.Value, &ev), hdr...)
	return nil
}

// dirtyNearLen is the number of slots of Processor.dirtyNear (a power of
// two).
const (
	dirtyNearBits = 11
	dirtyNearLen  = 1 << dirtyNearBits
)

type dirtyEntry struct {
	id  string
	gen uint32
}

// markDirty adds vehicle to the vehicles the next Flush writes.
func (p *Processor) markDirty(vehicle string) {
	a := uint64(uintptr(unsafe.Pointer(unsafe.StringData(vehicle))))
	e := &p.dirtyNear[(a*0x9e3779b97f4a7c15)>>(64-dirtyNearBits)]
	if e.gen == p.dirtyGen && len(e.id) == len(vehicle) && unsafe.StringData(e.id) == unsafe.StringData(vehicle) {
		return // in dirty already
	}
	p.dirty[vehicle] = struct{}{}
	*e = dirtyEntry{id: vehicle, gen: p.dirtyGen}
}

// clean returns the clean record's value: the raw value itself when it is
// already the encoding AppendEvent gives the validated, normalised event
// (framed with this process's schema, minimal varints, no value changed
// by Normalize: what the gateway writes), so that most events are
// forwarded without a copy; else the new encoding. The bytes written are
// the same either way.
func (p *Processor) clean(raw []byte, ev *telemetry.Event) []byte {
	p.scratch = p.codec.AppendEvent(p.scratch[:0], ev)
	if bytes.Equal(p.scratch, raw) {
		return raw
	}
	return bytes.Clone(p.scratch)
}

// CodeBadMark: a record with header kind=mark is not a TimeMark of its
// own partition with a gateway id and the key mark/<gateway>.
const CodeBadMark = "bad_mark"

// forwardMark checks a gateway's time mark and writes it, as it is, to the
// same partition of the clean topic, in order with the events of that
// partition (docs/ingest.md, "Time marks"). The gateway and ingest both
// place an event by its key with Kafka's murmur2 partitioner on topics of
// pipelines.TelemetryPartitions partitions, so the events that preceded a
// mark on raw partition p precede it on clean partition p.
func (p *Processor) forwardMark(rec pipelines.Record, out pipelines.Emitter) error {
	var m avro.TimeMark
	if err := p.cfg.Serde.Unmarshal(rec.Value, &m); err != nil {
		if errors.Is(err, schemas.ErrMalformed) || errors.Is(err, schemas.ErrUnknownSchema) {
			return pipelines.Reject(CodeBadMark, err)
		}
		return err // a registry that cannot be reached: retried
	}
	switch {
	case m.Gateway == "" || string(rec.Key) != pipelines.MarkKeyPrefix+m.Gateway:
		return pipelines.Reject(CodeBadMark, fmt.Errorf("mark of gateway %q under key %q", m.Gateway, rec.Key))
	case m.Partition != rec.Partition:
		return pipelines.Reject(CodeBadMark, fmt.Errorf("mark for partition %d found on partition %d", m.Partition, rec.Partition))
	}
	p.m.marks.Inc()
	out.EmitTo(pipelines.TopicTelemetryClean, rec.Partition, rec.Key, rec.Value, pipelines.MarkHeaders()...)
	return nil
}

// Flush writes the state of every vehicle changed in this batch to the
// changelog: one compacted record per vehicle per batch.
func (p *Processor) Flush(_ context.Context, out pipelines.Emitter) error {
	if len(p.dirty) == 0 {
		return nil
	}
	// The keys and values are carved from two buffers per Flush, not
	// allocated per vehicle. A buffer that grows leaves the slices already
	// emitted on its old array, untouched, so none is ever overwritten.
	keys := make([]byte, 0, 16*len(p.dirty))
	vals := make([]byte, 0, max(p.snapLen, 64)*len(p.dirty))
	n := 0
	for v := range p.dirty {
		start := len(vals)
		var ok bool
		if vals, ok = p.dedup.Snapshot(vals, v); !ok {
			continue
		}
		n++
		k := len(keys)
		keys = append(keys, v...)
		out.EmitTo(pipelines.TopicIngestChangelog, p.task.Partition, keys[k:len(keys):len(keys)], vals[start:len(vals):len(vals)])
	}
	if n > 0 {
		p.snapLen = len(vals)/n + 8
	}
	clear(p.dirty)
	p.dirtyGen++
	return nil
}

// Restore replays one changelog record. A record that does not decode is
// skipped with a warning: that vehicle starts with no history (repeats of
// its events may pass once) rather than blocking the partition.
func (p *Processor) Restore(_ context.Context, rec pipelines.Record) error {
	v := string(rec.Key)
	had := p.dedup.Window(v) != nil
	if rec.Value == nil {
		p.dedup.Forget(v)
	} else if err := p.dedup.Restore(v, rec.Value); err != nil {
		p.cfg.Logger.Warn("ingest changelog record skipped", "vehicle", v, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		p.dedup.Forget(v)
	}
	switch has := p.dedup.Window(v) != nil; {
	case has && !had:
		p.m.vehicles.Inc()
	case !has && had:
		p.m.vehicles.Dec()
	}
	return nil
}

// Tick forgets vehicles whose newest event is older than Validation.MaxAge
// (any event that could repeat theirs is refused as too_old) and writes
// their tombstones.
func (p *Processor) Tick(_ context.Context, now time.Time, out pipelines.Emitter) error {
	if p.cfg.Validation.MaxAge <= 0 {
		return nil
	}
	p.dirtyGen++ // dirtyNear must not answer for the vehicles deleted below
	for _, v := range p.dedup.Evict(now.Add(-p.cfg.Validation.MaxAge).UnixMilli()) {
		delete(p.dirty, v)
		p.m.vehicles.Dec()
		out.EmitTo(pipelines.TopicIngestChangelog, p.task.Partition, []byte(v), nil)
	}
	return nil
}

// Close releases the task's share of the vehicles gauge.
func (p *Processor) Close() error {
	p.m.vehicles.Sub(float64(p.dedup.Len()))
	return nil
}

type metrics struct {
	duplicates prometheus.Counter
	marks      prometheus.Counter
	odometer   prometheus.Counter
	vehicles   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		duplicates: m.Counter("minecart_ingest_duplicates_total", "Raw events dropped as repeats of events already written."),
		marks:      m.Counter("minecart_ingest_marks_total", "Gateway time marks forwarded to the clean topic."),
		odometer:   m.Counter("minecart_ingest_odometer_marks_total", "Events written with the odometer_decreased header (odometer contradicting the vehicle's newest reading)."),
		vehicles:   m.Gauge("minecart_ingest_vehicles", "Vehicles whose de-duplication window is held in memory."),
	}, m.Err()
}
