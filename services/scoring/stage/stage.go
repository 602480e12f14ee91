// Package stage runs scoring on the pipelines runtime: clean telemetry in;
// DailyScore records (key vehicle id) and Watermark records (key
// "wm/<task>") to the scores topic, LateEvent records to the late topic,
// each task's windows (scoring.Windows) to a compacted changelog, all in the
// transaction that commits the input offsets.
package stage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Config configures the scoring stage.
type Config struct {
	// Name is the stage name: consumer group and transactional id prefix
	// (default "scoring").
	Name string
	// Rules are the score's thresholds and weights (default
	// scoring.DefaultRules()).
	Rules *scoring.Rules
	// DefaultTZ is the time zone of events with an empty TZ (default
	// "Asia/Shanghai").
	DefaultTZ string
	// Grace is how long after its local midnight a day stays open for
	// late events (default 2h).
	Grace time.Duration
	// Lateness is how long after its close a vehicle-day is kept (as its
	// serialized state) so that a late event re-scores it into a new
	// DailyScore revision, measured like the grace from the window end by
	// the task's closed-through mark (default 7 days; a multiple of 15
	// minutes; negative: off, every late event goes to the late topic).
	// docs/scoring.md, "Late data".
	Lateness time.Duration
	// MarkExpiry: a gateway whose last time mark is more than this behind
	// another gateway's on the same partition no longer holds back the
	// task's log time (it crashed, or its clock lags; default 10m).
	MarkExpiry time.Duration
	// IdleTimeout is a fallback, off by default (0 or negative): a task
	// that got no record for this long (wall clock) moves its stream time
	// to the wall clock on the next tick. It is the one use of the wall
	// clock in scoring's decisions, so runs with it are not replayable;
	// with gateways writing time marks it is never needed (docs/scoring.md,
	// "Log time").
	IdleTimeout time.Duration
	// TickEvery is how often idle tasks are checked and closed days left
	// over by MaxClosesPerBatch are emitted when no record arrives
	// (default 10s).
	TickEvery time.Duration
	// MaxFuture rejects an event whose time is later than its Kafka record
	// timestamp by more than this (a box with a wrong clock must not close
	// everyone's day; default 10m). The record timestamp is in the log, so
	// the check is replayable.
	MaxFuture time.Duration
	// MaxClosesPerBatch caps the closed days emitted per transaction; the
	// rest wait for the next batch or tick, so a midnight with millions of
	// open days is not one giant transaction (default 20,000).
	MaxClosesPerBatch int
	// Tasks is P in every Watermark: the partition count of the input
	// topic (default pipelines.TelemetryPartitions).
	Tasks int
	// Topics (defaults: pipelines.TopicTelemetryClean, TopicScores,
	// TopicLateEvents, TopicScoringChangelog).
	Input, Scores, Late, Changelog string
	// Fingerprints receives each closed day's trip fingerprints, one record
	// per LSH band keyed by the band key, for the global replay check
	// (default pipelines.TopicFingerprints; "-": not written). Verdicts is
	// the check's output, a second input co-partitioned with Input
	// (default pipelines.TopicReplayVerdicts; "-": not read).
	// docs/scoring.md, "Global replay check".
	Fingerprints, Verdicts string
	// Serde frames the Avro records (default schemas.SingleObject()).
	Serde *schemas.Serde
	// Registerer receives the stage's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Now is the wall clock used to detect idle tasks (default time.Now).
	Now func() time.Time
	// ReplayDays is how many days of trip fingerprints each task keeps
	// for replay detection (default 30; negative: detection off), and
	// ReplayBudget how many fingerprints per day at most (default
	// 200,000). docs/scoring.md, "Replay detection".
	ReplayDays, ReplayBudget int
	// Shred, when set, seals every DailyScore under its vehicle's key
	// (crypto-shredding, docs/privacy.md): the scores topic then carries
	// a minecart.shred.Sealed keyed by the vehicle's pseudonym, and a
	// vehicle seen first gets its pseudonym key on Pseudonyms (default
	// pipelines.TopicLedgerPseudonyms) in the same transaction.
	Shred      *shred.Keyring
	Pseudonyms string
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "scoring"
	}
	if c.Rules == nil {
		r := scoring.DefaultRules()
		c.Rules = &r
	}
	if c.DefaultTZ == "" {
		c.DefaultTZ = "Asia/Shanghai"
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Hour
	}
	if c.Lateness == 0 {
		c.Lateness = DefaultLateness
	}
	if c.MarkExpiry == 0 {
		c.MarkExpiry = 10 * time.Minute
	}
	if c.TickEvery == 0 {
		c.TickEvery = 10 * time.Second
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = 10 * time.Minute
	}
	if c.Tasks == 0 {
		c.Tasks = pipelines.TelemetryPartitions
	}
	if c.MaxClosesPerBatch == 0 {
		c.MaxClosesPerBatch = 20000
	}
	if c.Input == "" {
		c.Input = pipelines.TopicTelemetryClean
	}
	if c.Scores == "" {
		c.Scores = pipelines.TopicScores
	}
	if c.Late == "" {
		c.Late = pipelines.TopicLateEvents
	}
	if c.Changelog == "" {
		c.Changelog = pipelines.TopicScoringChangelog
	}
	if c.Fingerprints == "" {
		c.Fingerprints = pipelines.TopicFingerprints
	}
	if c.Verdicts == "" {
		c.Verdicts = pipelines.TopicReplayVerdicts
	}
	if c.Serde == nil {
		c.Serde = schemas.SingleObject()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ReplayDays == 0 {
		c.ReplayDays = 30
	}
	if c.ReplayBudget <= 0 {
		c.ReplayBudget = 200_000
	}
	if c.Pseudonyms == "" {
		c.Pseudonyms = pipelines.TopicLedgerPseudonyms
	}
	return c
}

// Validate reports a configuration NewStage cannot run, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := time.LoadLocation(c.DefaultTZ); err != nil {
		errs = append(errs, fmt.Errorf("default tz: %w", err))
	}
	if c.Grace < 0 || c.Grace > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("grace %v not in [0, 7d]", c.Grace))
	}
	if c.Lateness > 30*24*time.Hour || c.Lateness > 0 && c.Lateness%(15*time.Minute) != 0 {
		errs = append(errs, fmt.Errorf("lateness %v: at most 30 days, a multiple of 15 minutes", c.Lateness))
	}
	if c.TickEvery < 0 || c.MaxFuture < 0 || c.MarkExpiry < 0 {
		errs = append(errs, errors.New("negative TickEvery, MaxFuture or MarkExpiry"))
	}
	if c.MaxClosesPerBatch < 1 {
		errs = append(errs, fmt.Errorf("MaxClosesPerBatch %d < 1", c.MaxClosesPerBatch))
	}
	if c.Tasks < 1 {
		errs = append(errs, fmt.Errorf("tasks %d < 1", c.Tasks))
	}
	if c.Shred != nil {
		if err := c.Shred.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NewStage returns the scoring stage (see the package comment).
func NewStage(cfg Config) (pipelines.Stage, error) {
	if err := cfg.Validate(); err != nil {
		return pipelines.Stage{}, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return pipelines.Stage{}, err
	}
	codec, err := wire.NewCodec(cfg.Serde)
	if err != nil {
		return pipelines.Stage{}, err
	}
	inputs := []string{cfg.Input}
	if cfg.Verdicts != "-" {
		inputs = append(inputs, cfg.Verdicts)
	}
	return pipelines.Stage{
		Name:      cfg.Name,
		Inputs:    inputs,
		Changelog: cfg.Changelog,
		TickEvery: cfg.TickEvery, // also drains closed days left over by the last batch
		NewProcessor: func(_ context.Context, t pipelines.Task) (pipelines.Processor, error) {
			return newProcessor(&cfg, m, codec, t.Partition)
		},
	}, nil
}

// DefaultLateness is how long closed days are kept for late data.
const DefaultLateness = 7 * 24 * time.Hour

type processor struct {
	cfg       *Config
	m         *metrics
	codec     *wire.Decoder // telemetry's specialised decoder for this serde's framing (ids interned per task), the serde for any other
	task      int32
	w         *scoring.Windows
	closed    *scoring.ClosedDays      // closed days kept for late data (nil: Lateness off)
	clock     *scoring.LogClock        // the task's log time, from the gateways' marks
	lastSeen  time.Time                // wall clock of the last batch with records
	seen      bool                     // records processed since the last Flush
	lastWM    int64                    // mark of the last Watermark written (0 after a restore: written again once)
	open      int                      // open windows last reported to the gauge
	kept      int                      // closed days kept last reported to the gauge
	keptBytes int                      // their serialized bytes last reported
	limits    telemetry.ValidateConfig // physical limits of check: telemetry.Validate's defaults
	shred     *shred.Writer            // seals the scores (Config.Shred; nil: clear)
}

func newProcessor(cfg *Config, m *metrics, codec *wire.Codec, task int32) (*processor, error) {
	w, err := scoring.NewWindows(cfg.Rules, cfg.DefaultTZ, cfg.Grace)
	if err != nil {
		return nil, err
	}
	if cfg.ReplayDays > 0 {
		if err := w.EnableReplay(replay.DefaultConfig(), cfg.ReplayDays, cfg.ReplayBudget); err != nil {
			return nil, err
		}
	}
	p := &processor{cfg: cfg, m: m, codec: codec.NewDecoder(0), task: task, w: w, clock: scoring.NewLogClock(cfg.MarkExpiry), lastSeen: cfg.Now(),
		limits: telemetry.ValidateConfig{}.Defaults()}
	if cfg.Lateness > 0 {
		p.closed = scoring.NewClosedDays(cfg.Rules, cfg.Lateness)
	}
	if cfg.Shred != nil {
		p.shred = shred.NewWriter(cfg.Shred)
	}
	return p, nil
}

// Close reports the task's windows as no longer open here.
func (p *processor) Close() error {
	p.m.open.Sub(float64(p.open))
	p.open = 0
	p.m.kept.Sub(float64(p.kept))
	p.m.keptBytes.Sub(float64(p.keptBytes))
	p.kept, p.keptBytes = 0, 0
	return nil
}

// Process scores one clean telemetry event, or applies one time mark.
func (p *processor) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if pipelines.IsMark(&rec) {
		return p.mark(ctx, rec, out)
	}
	if rec.Topic == p.cfg.Verdicts {
		return p.verdict(rec, out)
	}
	ev, err := p.codec.DecodeEvent(rec.Value, telemetry.Limits{})
	if err != nil {
		return pipelines.Reject("decode", err)
	}
	if err := p.check(&ev, rec.Timestamp); err != nil {
		return pipelines.Reject(telemetry.CodeOf(err), err)
	}
	late, err := p.w.AddRef(&ev, odoRef(&rec), nil) // closed days are emitted by Flush
	if err != nil {
		return pipelines.Reject(telemetry.CodeBadTZ, err)
	}
	p.seen = true
	p.m.events.Inc()
	if late != nil {
		if p.closed != nil && !p.closed.TooLate(late) {
			// A day closed but still in the emission queue is emitted first
			// (queue order), so its revision 0 always precedes its revisions
			// on the scores topic; this can exceed MaxClosesPerBatch only
			// when a late event meets a backlog of closes.
			for p.w.Frozen(ev.VehicleID, late.WindowStart) != nil {
				var cerr error
				p.w.Drain(1, func(c scoring.Closed) { cerr = p.emitClosed(ctx, out, c) })
				if cerr != nil {
					return cerr
				}
			}
			if p.closed.Add(&ev, late, nil) {
				p.m.lateKept.Inc() // re-scores the day at the next mark
				return nil
			}
		}
		p.m.late.Inc()
		return p.emitLate(out, &ev, late)
	}
	return nil
}

// odoRef is ingest's odometer mark of the record (docs/ingest.md,
// "Odometer marks"), nil when it has none. A mark of another version than
// the stage knows is ignored: the day's own event-time check still holds.
func odoRef(rec *pipelines.Record) *scoring.OdoRef {
	v := rec.Header(ingest.HeaderOdometer)
	if v == nil {
		return nil
	}
	ms, km, err := ingest.ParseOdometerMark(v)
	if err != nil {
		return nil
	}
	return &scoring.OdoRef{TimeMs: ms, Km: km}
}

// check re-checks what the score relies on, cheaply and deterministically
// (ingest ran telemetry.Validate already; its full check costs about as
// much as scoring the event): finite numbers in physical ranges, and an
// event time at most MaxFuture after the record's timestamp, which is in
// the log, so the check replays identically. Errors carry telemetry's
// reason codes.
func (p *processor) check(ev *telemetry.Event, recTime time.Time) error {
	bad := func(code, field string, v any) error {
		return &telemetry.Error{Code: code, Field: field, Msg: fmt.Sprint(v)}
	}
	if ev.VehicleID == "" {
		return bad(telemetry.CodeMissingField, "vehicle_id", "required")
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"lat", ev.Lat}, {"lon", ev.Lon}, {"hdop", ev.HDOP}, {"speed_kmh", ev.SpeedKmh}, {"accel_lon_ms2", ev.AccelLonMS2},
		{"accel_lat_ms2", ev.AccelLatMS2}, {"speed_limit_kmh", ev.SpeedLimitKmh}, {"odometer_km", ev.OdometerKm}} {
		if f.v-f.v != 0 { // NaN or ±Inf
			return bad(telemetry.CodeNotFinite, f.name, f.v)
		}
	}
	switch {
	case ev.Lat < -90 || ev.Lat > 90 || ev.Lon < -180 || ev.Lon > 180:
		return bad(telemetry.CodePosition, "lat", fmt.Sprintf("%v,%v", ev.Lat, ev.Lon))
	case ev.SpeedKmh < 0 || ev.SpeedKmh > p.limits.MaxSpeedKmh:
		return bad(telemetry.CodeSpeed, "speed_kmh", ev.SpeedKmh)
	case math.Abs(ev.AccelLonMS2) > p.limits.MaxAccelMS2 || math.Abs(ev.AccelLatMS2) > p.limits.MaxAccelMS2:
		return bad(telemetry.CodeAccel, "accel_lon_ms2", fmt.Sprintf("%v,%v", ev.AccelLonMS2, ev.AccelLatMS2))
	case ev.OdometerKm < 0 || ev.SpeedLimitKmh < 0 || ev.HDOP < 0:
		return bad(telemetry.CodeSensor, "odometer_km", "negative odometer, speed limit or hdop")
	}
	if !recTime.IsZero() && ev.TimeMs > recTime.UnixMilli()+p.cfg.MaxFuture.Milliseconds() {
		return bad(telemetry.CodeFuture, "time_ms", fmt.Sprintf("%s is %v after its record timestamp",
			time.UnixMilli(ev.TimeMs).UTC().Format(time.RFC3339), time.Duration(ev.TimeMs-recTime.UnixMilli())*time.Millisecond))
	}
	return nil
}

// CodeBadMark: a record with header kind=mark that is not a TimeMark of
// this partition, or one dated more than MaxFuture after its record
// timestamp (a gateway with a wrong clock must not close every day).
const CodeBadMark = "bad_mark"

// mark applies a gateway's time mark: the task's log time (LogClock) moves
// to the lowest mark of the live gateways, and the days it passes by the
// grace close (emitted by Flush). The first mark switches the task from
// event time to log time for good.
func (p *processor) mark(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	var m avro.TimeMark
	if err := p.cfg.Serde.Unmarshal(rec.Value, &m); err != nil {
		return pipelines.Reject(CodeBadMark, err)
	}
	t := m.TimeMs.UnixMilli()
	switch {
	case m.Gateway == "" || m.Partition != p.task:
		return pipelines.Reject(CodeBadMark, fmt.Errorf("mark of gateway %q for partition %d on task %d", m.Gateway, m.Partition, p.task))
	case !rec.Timestamp.IsZero() && t > rec.Timestamp.UnixMilli()+p.cfg.MaxFuture.Milliseconds():
		return pipelines.Reject(CodeBadMark, fmt.Errorf("mark %s of gateway %q is %v after its record timestamp", m.TimeMs.Format(time.RFC3339), m.Gateway,
			time.Duration(t-rec.Timestamp.UnixMilli())*time.Millisecond))
	}
	if !p.clock.Active() {
		p.w.SetLogClock(true)
	}
	p.w.Advance(p.clock.Mark(m.Gateway, t, m.Leaving), nil) // closed days are emitted by Flush
	p.seen = true
	p.m.marks.Inc()
	p.m.logTime.Set(float64(p.clock.Time()))
	return p.revise(ctx, out)
}

// revise emits one new DailyScore revision of every kept closed day that
// took late events since the last call. The stage calls it at each time
// mark (a point in the log, so replays group late events into the same
// revisions), and from Flush on a task no gateway marks.
func (p *processor) revise(ctx context.Context, out pipelines.Emitter) error {
	if p.closed == nil || p.closed.Pending() == 0 {
		return nil
	}
	var cerr error
	p.closed.Revise(p.w.ClosedThrough(), func(r *scoring.Revision) {
		rec := scoreRecord(p.cfg.Rules, &r.Closed)
		rec.Revision, rec.ReleaseMs, rec.LateAdded = r.Revision, r.ReleaseMs, r.LateAdded
		b, err := p.cfg.Serde.Marshal(rec)
		if err != nil {
			if cerr == nil {
				cerr = fmt.Errorf("encode revision %d of %s: %w", r.Revision, r.ID, err)
			}
			return
		}
		if err := p.emitScore(ctx, out, r.Vehicle, b); err != nil {
			if cerr == nil {
				cerr = err
			}
			return
		}
		p.m.revisions.Inc()
	})
	return cerr // encoding our own schema failed (a bug) or no key: the transaction aborts
}

// emitScore emits one DailyScore (framed value b) of vehicle: in clear
// keyed by the vehicle id, or sealed under the vehicle's key and keyed by
// its pseudonym (Config.Shred), with the key's record when it is new.
func (p *processor) emitScore(ctx context.Context, out pipelines.Emitter, vehicle string, b []byte) error {
	if p.shred == nil {
		out.Emit(p.cfg.Scores, []byte(vehicle), b)
		return nil
	}
	s, newKey, err := p.shred.Seal(ctx, p.cfg.Scores, pseudonym.Vehicle, vehicle, b)
	if err != nil {
		return fmt.Errorf("seal score of %s: %w", vehicle, err)
	}
	if newKey != nil {
		v, err := p.cfg.Serde.Marshal(newKey)
		if err != nil {
			return fmt.Errorf("encode pseudonym: %w", err)
		}
		out.EmitTo(p.cfg.Pseudonyms, 0, []byte(newKey.Pseudonym), v)
		p.m.newKeys.Inc()
	}
	v, err := p.cfg.Serde.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode sealed score: %w", err)
	}
	out.Emit(p.cfg.Scores, []byte(s.Pseudonym), v)
	return nil
}

// Tick is the idle fallback (off by default): it closes windows on the
// wall clock when the task got no record for IdleTimeout.
func (p *processor) Tick(_ context.Context, now time.Time, out pipelines.Emitter) error {
	if p.cfg.IdleTimeout <= 0 || p.seen || p.cfg.Now().Sub(p.lastSeen) < p.cfg.IdleTimeout {
		return nil
	}
	p.w.Advance(now.UnixMilli(), nil) // closed days are emitted by the Flush that follows
	return nil
}

// Flush emits up to MaxClosesPerBatch closed days (score + changelog
// tombstone), writes the changelog once per window touched in the batch,
// and the task's Watermark when it moved.
func (p *processor) Flush(ctx context.Context, out pipelines.Emitter) error {
	if p.shred != nil {
		defer p.shred.EndTransaction()
	}
	if p.seen { // once per batch: the clock costs ~0.1 us, a record ~1 us
		p.lastSeen, p.seen = p.cfg.Now(), false
	}
	var cerr error
	p.w.Drain(p.cfg.MaxClosesPerBatch, func(c scoring.Closed) {
		if err := p.emitClosed(ctx, out, c); err != nil && cerr == nil {
			cerr = err
		}
	})
	if cerr != nil {
		return cerr // encoding our own schema failed: a bug; the transaction aborts
	}
	if !p.clock.Active() { // no marks on this partition: revise per batch (not replay-exact)
		if err := p.revise(ctx, out); err != nil {
			return err
		}
	}
	p.w.Flush(func(key string, value []byte) {
		out.EmitTo(p.cfg.Changelog, p.task, []byte(key), value)
	})
	if p.closed != nil {
		p.closed.Expire(p.w.ClosedThrough())
		p.closed.Flush(func(key string, value []byte) {
			out.EmitTo(p.cfg.Changelog, p.task, []byte(key), value)
		})
		if n := p.closed.Len(); n != p.kept {
			p.m.kept.Add(float64(n - p.kept))
			p.kept = n
		}
		if n := p.closed.Bytes(); n != p.keptBytes {
			p.m.keptBytes.Add(float64(n - p.keptBytes))
			p.keptBytes = n
		}
	}
	if p.clock.Dirty() {
		out.EmitTo(p.cfg.Changelog, p.task, []byte(clockKey), p.clock.AppendBinary(nil))
	}
	if n := p.w.Open(); n != p.open {
		p.m.open.Add(float64(n - p.open))
		p.open = n
	}
	// Window ends fall on quarter hours (every zone offset is a multiple of
	// 15 minutes), so a watermark floored to the quarter hour says as much
	// as the exact one: idle tasks, whose stream time follows the wall
	// clock, then write one watermark per quarter hour instead of one per tick.
	if ct := p.w.EmittedThrough() / watermarkStep * watermarkStep; ct > p.lastWM {
		b, err := p.cfg.Serde.Marshal(&avro.Watermark{Task: p.task, Tasks: int32(p.cfg.Tasks), ClosedThroughMs: time.UnixMilli(ct).UTC()})
		if err != nil {
			return fmt.Errorf("encode watermark: %w", err)
		}
		out.Emit(p.cfg.Scores, []byte("wm/"+strconv.Itoa(int(p.task))), b)
		p.lastWM = ct
	}
	return nil
}

// watermarkStep is the granularity of Watermark records, in milliseconds.
const watermarkStep = int64(15 * time.Minute / time.Millisecond)

// clockKey is the changelog key of the task's LogClock (window keys
// contain a '/', the windows' meta record is "task").
const clockKey = "clock"

// Restore replays one changelog record. A record that does not decode is
// logged and counted, not fatal: one bad record must not block the task.
func (p *processor) Restore(_ context.Context, rec pipelines.Record) error {
	var err error
	if string(rec.Key) == clockKey {
		err = p.clock.Restore(rec.Value)
		p.w.SetLogClock(p.clock.Active())
		p.m.logTime.Set(float64(p.clock.Time()))
	} else if strings.HasPrefix(string(rec.Key), scoring.ClosedKeyPrefix) {
		if p.closed != nil {
			err = p.closed.Restore(string(rec.Key), rec.Value)
		}
	} else {
		err = p.w.Restore(string(rec.Key), rec.Value)
	}
	if err != nil {
		p.m.restoreErrors.Inc()
		p.cfg.Logger.Error("scoring changelog record skipped", "task", p.task, "key", string(rec.Key), "offset", rec.Offset, "err", err)
		return nil
	}
	return nil
}

func (p *processor) emitClosed(ctx context.Context, out pipelines.Emitter, c scoring.Closed) error {
	b, err := p.cfg.Serde.Marshal(scoreRecord(p.cfg.Rules, &c))
	if err != nil {
		return fmt.Errorf("encode score %s: %w", c.ID, err)
	}
	if err := p.emitScore(ctx, out, c.Vehicle, b); err != nil {
		return err
	}
	out.EmitTo(p.cfg.Changelog, p.task, []byte(c.ID), nil)
	p.publishTrips(out, c.Trips)
	if p.closed != nil {
		p.closed.Keep(&c) // kept (serialized) for late data: written to the changelog by Flush
	}
	p.m.closed.Inc()
	for _, f := range c.Result.Flags {
		p.m.flags.WithLabelValues(f).Inc()
	}
	return nil
}

func (p *processor) emitLate(out pipelines.Emitter, ev *telemetry.Event, l *scoring.Late) error {
	b, err := p.cfg.Serde.Marshal(&avro.LateEvent{
		EventID: ev.EventID, DeviceID: ev.DeviceID, VehicleID: ev.VehicleID, Seq: int64(ev.Seq),
		TimeMs: time.UnixMilli(ev.TimeMs).UTC(), TZ: ev.TZ, Lat: ev.Lat, Lon: ev.Lon, HDOP: ev.HDOP,
		SpeedKmh: ev.SpeedKmh, HeadingDeg: ev.HeadingDeg, AccelLonMS2: ev.AccelLonMS2, AccelLatMS2: ev.AccelLatMS2,
		SpeedLimitKmh: ev.SpeedLimitKmh, OdometerKm: ev.OdometerKm, EngineOn: ev.EngineOn, FuelPct: ev.FuelPct,
		BatteryV: ev.BatteryV, CoolantC: ev.CoolantC, FaultCodes: ev.FaultCodes,
		Reason:          p.lateReason(ev, l),
		WindowEnd:       time.UnixMilli(l.WindowEnd).UTC(),
		ClosedThroughMs: time.UnixMilli(l.ClosedThrough).UTC(),
	})
	if err != nil {
		return fmt.Errorf("encode late event: %w", err)
	}
	out.Emit(p.cfg.Late, []byte(ev.VehicleID), b)
	return nil
}

// lateReason says why a late event could not re-score its day.
func (p *processor) lateReason(ev *telemetry.Event, l *scoring.Late) string {
	closed := time.UnixMilli(l.ClosedThrough).UTC().Format(time.RFC3339)
	if p.closed == nil {
		return fmt.Sprintf("window %s of %s closed: task %d closed through %s", l.Date, ev.VehicleID, p.task, closed)
	}
	return fmt.Sprintf("window %s of %s closed more than the lateness (%v) ago: task %d closed through %s", l.Date, ev.VehicleID,
		p.cfg.Lateness, p.task, closed)
}

// scoreRecord is a closed day as a DailyScore record.
func scoreRecord(r *scoring.Rules, c *scoring.Closed) *avro.DailyScore {
	res := &c.Result
	late := res.LateEvents
	return &avro.DailyScore{
		ID: c.ID, VehicleID: c.Vehicle, DeviceID: c.Day.Device, Date: c.Date, TZ: c.TZ,
		WindowStart: time.UnixMilli(c.Day.Start).UTC(), WindowEnd: time.UnixMilli(c.Day.End).UTC(), ConfigVersion: r.Version,
		DistanceKm: res.DistanceKm, GpsKm: res.GPSKm, OdometerKm: res.OdometerKm, DrivingS: res.DrivingS,
		HarshBrake: int32(res.HarshBrake), HarshAccel: int32(res.HarshAccel), HarshCorner: int32(res.HarshCorner),
		SpeedingS: res.SpeedingS, NightS: res.NightS, FatigueEvents: int32(res.FatigueEvents), Events: res.Events,
		LateEvents: &late, GpsJumps: int32(res.GPSJumps), HDOPRejected: res.HDOPRejected,
		OdometerRollbacks: int32(res.OdometerRollbacks), Score: res.Score, Points: res.Points,
		Flags: res.Flags, FlagReasons: res.Reasons, EventsHash: res.EventsHash[:], Region: res.Region,
	}
}

type metrics struct {
	events, late, closed, restoreErrors, marks prometheus.Counter
	lateKept, revisions, fpRecords, newKeys    prometheus.Counter
	verdicts                                   *prometheus.CounterVec
	open, logTime, kept, keptBytes             prometheus.Gauge
	flags                                      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		events:        m.Counter("minecart_scoring_events_total", "Telemetry events scored (late ones included)."),
		late:          m.Counter("minecart_scoring_late_events_total", "Events whose day had closed, written to the late-events topic."),
		closed:        m.Counter("minecart_scoring_windows_closed_total", "Vehicle-days closed and scored."),
		restoreErrors: m.Counter("minecart_scoring_restore_errors_total", "Changelog records that could not be restored and were skipped."),
		marks:         m.Counter("minecart_scoring_marks_total", "Gateway time marks applied to the tasks' log time."),
		logTime:       m.Gauge("minecart_scoring_log_time_ms", "Log time of the task that applied a mark last, Unix ms (docs/scoring.md, Log time)."),
		open:          m.Gauge("minecart_scoring_open_windows", "Vehicle-days open in this process."),
		lateKept:      m.Counter("minecart_scoring_late_rescored_events_total", "Events for a closed day within the lateness: they re-score the day."),
		revisions:     m.Counter("minecart_scoring_revisions_total", "DailyScore revisions written for closed days re-scored after late data."),
		newKeys:       m.Counter("minecart_scoring_pseudonym_keys_total", "Pseudonym keys made for vehicles first scored here (their scores sealed under them, docs/privacy.md)."),
		kept:          m.Gauge("minecart_scoring_closed_days_kept", "Closed vehicle-days kept (serialized) in this process for late data."),
		keptBytes:     m.Gauge("minecart_scoring_closed_days_bytes", "Serialized bytes of the closed vehicle-days kept in this process (bytes per closed day: this / minecart_scoring_closed_days_kept)."),
		fpRecords:     m.Counter("minecart_scoring_fingerprint_records_total", "Fingerprint records written for the global replay check (one per trip and LSH band)."),
		verdicts:      m.CounterVec("minecart_scoring_replay_verdicts_total", "Global replay check verdicts, by outcome (applied, already, not_kept).", "outcome"),
		flags:         m.CounterVec("minecart_scoring_flags_total", "Anti-fraud flags raised on closed days, by code.", "flag"),
	}, m.Err()
}

// publishTrips writes each trip fingerprint of a closed day to the
// fingerprints topic once per LSH band: key the band key (8 bytes, big
// endian), value the fingerprint record (replay.AppendBinary), so all
// fingerprints sharing a band meet on one partition of the global check.
func (p *processor) publishTrips(out pipelines.Emitter, trips []replay.Fingerprint) {
	if p.cfg.Fingerprints == "-" {
		return
	}
	for i := range trips {
		v := replay.AppendBinary(nil, &trips[i]) // shared by the band records: not modified after Emit
		for b := range replay.Bands {
			out.Emit(p.cfg.Fingerprints, binary.BigEndian.AppendUint64(nil, replay.BandKey(&trips[i], b)), v)
		}
		p.m.fpRecords.Add(replay.Bands)
	}
}

// Reason codes of verdicts that cannot be applied.
const (
	CodeBadVerdict     = "bad_verdict"
	CodeVerdictNotKept = "replay_verdict_not_kept"
)

// verdict applies a global replay check verdict to the kept closed day of
// its vehicle: the day takes replayed_trace (points x0) and its next
// revision is written at the next time mark (or Flush without marks), as
// for late data. A day already flagged changes nothing; a day not kept
// (past the lateness, lateness off, or never closed on this task) is a
// dead letter with the reason.
func (p *processor) verdict(rec pipelines.Record, _ pipelines.Emitter) error {
	v, err := replay.DecodeVerdict(rec.Value)
	if err != nil {
		return pipelines.Reject(CodeBadVerdict, err)
	}
	if string(rec.Key) != v.Vehicle {
		return pipelines.Reject(CodeBadVerdict, fmt.Errorf("verdict for %s under key %q", v.Vehicle, rec.Key))
	}
	p.seen = true
	if p.closed == nil {
		p.m.verdicts.WithLabelValues("not_kept").Inc()
		return pipelines.Reject(CodeVerdictNotKept, fmt.Errorf("verdict %s: closed days are not kept (lateness off)", v.ID()))
	}
	switch p.closed.Replayed(v.Vehicle+"/"+v.Date, v.Reason()) {
	case scoring.VerdictApplied:
		p.m.verdicts.WithLabelValues("applied").Inc()
	case scoring.VerdictAlready:
		p.m.verdicts.WithLabelValues("already").Inc()
	default:
		p.m.verdicts.WithLabelValues("not_kept").Inc()
		return pipelines.Reject(CodeVerdictNotKept, fmt.Errorf("verdict %s: day %s/%s not kept on task %d (closed through %s, lateness %v)",
			v.ID(), v.Vehicle, v.Date, p.task, time.UnixMilli(p.w.ClosedThrough()).UTC().Format(time.RFC3339), p.cfg.Lateness))
	}
	return nil
}
