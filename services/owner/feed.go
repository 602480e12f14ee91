package owner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Feed fills a view.View from the records of minecart.telemetry.clean and
// minecart.scores, decoded and converted exactly as services/sink writes
// them to ClickHouse (so the view answers what ClickHouse would). The
// wiring (services/stack, a main) follows each topic with its own
// read_committed kafka.Reader from the topic's start, passing Telemetry or
// Scores as the record function and TelemetryCaught or ScoresCaught as
// the caught function: the view is rebuilt from Kafka on every start,
// never from a file. A record that does not decode is logged, counted and
// skipped (the sink dead-letters it; ClickHouse holds no row of it
// either).
type Feed struct {
	view   *view.View
	serde  *schemas.Serde
	events *wire.Codec
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	pos      map[string]map[int32]int64 // topic -> partition -> next offset to apply
	lastTrim time.Time

	records                   *prometheus.CounterVec
	teleRecords, scoreRecords prometheus.Counter // of records
	bad                       *prometheus.CounterVec
	lag                       *prometheus.GaugeVec
	shredded                  prometheus.Counter
	unseal                    *shred.Reader   // opens sealed scores (FeedConfig.Pseudonyms; nil: none)
	ctx                       context.Context // Run's, for the key lookups of unseal
}

// FeedConfig configures a Feed.
type FeedConfig struct {
	View       *view.View     // required
	Serde      *schemas.Serde // the records' framing (required)
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
	// SkewMargin is added to the timestamp of the first record read of a
	// partition whose log start moved (retention deleted records): events
	// up to it may have been in deleted records (default 1 h, above
	// ingest's 5 min allowance for box clocks ahead).
	SkewMargin time.Duration
	// Pseudonyms opens sealed scores (crypto-shredding, docs/privacy.md;
	// follow.Follower). Nil: a sealed score is a bad record.
	Pseudonyms shred.Keys
}

// NewFeed returns a feed of cfg.View and registers its metrics:
// minecart_owner_view_records_total, _bad_records_total, _lag_records, and
// the view's sizes (_bytes, _vehicle_days, _points, _vehicles, _scores,
// _caught).
func NewFeed(cfg FeedConfig) (*Feed, error) {
	if cfg.View == nil || cfg.Serde == nil {
		return nil, errors.New("owner feed: no view or serde")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	codec, err := wire.NewCodec(cfg.Serde)
	if err != nil {
		return nil, fmt.Errorf("owner feed: %w", err)
	}
	f := &Feed{view: cfg.View, serde: cfg.Serde, events: codec, log: cfg.Logger, now: cfg.Now, pos: map[string]map[int32]int64{},
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_owner_view_records_total",
			Help: "Records the owner view applied, by topic."}, []string{"topic"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_owner_view_bad_records_total",
			Help: "Records the owner view skipped because they did not decode, by topic."}, []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "minecart_owner_view_lag_records",
			Help: "Records of the topic not yet applied to the owner view (at the last check, SetLag)."}, []string{"topic"}),
		shredded: prometheus.NewCounter(prometheus.CounterOpts{Name: "minecart_owner_view_shredded_records_total",
			Help: "Sealed scores skipped because their vehicle's key is destroyed (erased): they name nobody any more."}),
		ctx: context.Background(),
	}
	if cfg.Pseudonyms != nil {
		f.unseal = &shred.Reader{Keys: cfg.Pseudonyms, Serde: cfg.Serde}
	}
	f.teleRecords = f.records.WithLabelValues(pipelines.TopicTelemetryClean)
	f.scoreRecords = f.records.WithLabelValues(pipelines.TopicScores)
	if cfg.Registerer == nil {
		return f, nil
	}
	stat := func(name, help string, fn func(view.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "minecart_owner_view_" + name, Help: help},
			func() float64 { return fn(cfg.View.Stats()) })
	}
	for _, c := range []prometheus.Collector{f.records, f.bad, f.lag, f.shredded,
		stat("bytes", "Estimated heap of the owner view (encoded points plus fixed costs per vehicle, day and score).", func(s view.Stats) float64 { return float64(s.Bytes()) }),
		stat("vehicle_days", "Vehicle-days of track the owner view keeps.", func(s view.Stats) float64 { return float64(s.Days) }),
		stat("points", "Track points the owner view keeps.", func(s view.Stats) float64 { return float64(s.Points) }),
		stat("vehicles", "Vehicles the owner view knows.", func(s view.Stats) float64 { return float64(s.Vehicles) }),
		stat("scores", "Daily scores the owner view keeps.", func(s view.Stats) float64 { return float64(s.Scores) }),
		stat("overflow_days_total", "Vehicle-days dropped from the owner view for exceeding the points cap.", func(s view.Stats) float64 { return float64(s.Overflows) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "minecart_owner_view_caught", Help: "1 once both feeds of the owner view caught up."},
			func() float64 {
				if cfg.View.Caught() {
					return 1
				}
				return 0
			}),
	} {
		if err := cfg.Registerer.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("owner feed metrics: %w", err)
			}
		}
	}
	return f, nil
}

// seen notes rec's offset and the first record of its partition: if that
// is past offset 0, the log start moved (retention) and data before the
// record's time (plus the margin) may be missing from the view.
func (f *Feed) seen(rec *pipelines.Record, set func(int64), margin time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.pos[rec.Topic]
	if ps == nil {
		ps = map[int32]int64{}
		f.pos[rec.Topic] = ps
	}
	if _, ok := ps[rec.Partition]; !ok && rec.Offset > 0 {
		set(rec.Timestamp.Add(margin).UnixMilli())
	}
	ps[rec.Partition] = rec.Offset + 1
}

// Lag returns how many offsets of topic are below ends (the topic's last
// stable offsets, kafka.Reader.Ends) and past the last record applied, and
// sets the lag gauge to it. Transaction markers are offsets too and are
// never applied: a caught-up partition written in transactions (the clean
// and scores topics are) shows 1, its last commit marker.
func (f *Feed) Lag(topic string, ends map[int32]int64) int64 {
	f.mu.Lock()
	var n int64
	for p, end := range ends {
		n += max(0, end-f.pos[topic][p])
	}
	f.mu.Unlock()
	f.lag.WithLabelValues(topic).Set(float64(n))
	return n
}

// trim drops what left the window, at most once a minute.
func (f *Feed) trim(now time.Time) {
	f.mu.Lock()
	due := now.Sub(f.lastTrim) > time.Minute
	if due {
		f.lastTrim = now
	}
	f.mu.Unlock()
	if due {
		f.view.Trim(now)
	}
}

// Telemetry applies one record of minecart.telemetry.clean (time marks
// are skipped). It never fails: a bad record is logged and counted.
func (f *Feed) Telemetry(rec pipelines.Record) error {
	f.seen(&rec, f.view.SetTelemetryFrom, time.Hour)
	if pipelines.IsMark(&rec) {
		return nil
	}
	ev, err := f.events.DecodeEvent(rec.Value, telemetry.Limits{})
	if err != nil {
		f.bad.WithLabelValues(rec.Topic).Inc()
		f.log.Warn("owner view: telemetry record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return nil
	}
	now := f.now()
	f.view.AddEvent(ViewEvent(&ev), now)
	f.teleRecords.Inc()
	f.trim(now)
	return nil
}

// ViewEvent converts ev as services/sink converts it to a telemetry row.
func ViewEvent(ev *telemetry.Event) view.Event {
	e := view.Event{Vehicle: ev.VehicleID, Device: ev.DeviceID, Seq: ev.Seq, TimeMs: ev.TimeMs,
		LatE6: int32(math.Round(ev.Lat * 1e6)), LonE6: int32(math.Round(ev.Lon * 1e6)),
		SpeedKmh: float32(ev.SpeedKmh), HeadingDeg: float32(ev.HeadingDeg),
		OdometerM: uint64(math.Round(max(ev.OdometerKm, 0) * 1000)), EngineOn: ev.EngineOn}
	if ev.HDOP != 0 && !math.IsNaN(ev.HDOP) {
		e.HDOP, e.HasHDOP = float32(ev.HDOP), true
	}
	return e
}

// Scores applies one record of minecart.scores (watermarks are skipped).
// It never fails: a bad record is logged and counted.
func (f *Feed) Scores(rec pipelines.Record) error {
	f.seen(&rec, f.view.SetScoresFrom, 0)
	name, err := f.serde.Name(rec.Value)
	if err == nil && name == schemas.Sealed {
		if f.unseal == nil {
			err = errors.New("a sealed score, and the view has no pseudonym keys to open it")
		} else {
			var inner []byte
			_, inner, _, err = f.unseal.Unseal(f.ctx, rec.Topic, rec.Key, rec.Value)
			if errors.Is(err, shred.ErrShredded) {
				f.shredded.Inc()
				return nil // names nobody any more
			}
			if err == nil {
				rec.Value = inner
				name, err = f.serde.Name(rec.Value)
			}
		}
	}
	if err == nil && name == schemas.Watermark {
		return nil
	}
	var s avro.DailyScore
	if err == nil && name != schemas.DailyScore {
		err = fmt.Errorf("record %s on %s", name, rec.Topic)
	}
	if err == nil {
		err = f.serde.Unmarshal(rec.Value, &s)
	}
	var vs view.Score
	if err == nil {
		vs, err = ViewScore(&s, rec.Offset)
	}
	if err != nil {
		f.bad.WithLabelValues(rec.Topic).Inc()
		f.log.Warn("owner view: score record skipped", "offset", rec.Offset, "err", err)
		return nil
	}
	now := f.now()
	f.view.AddScore(s.VehicleID, vs, now)
	f.scoreRecords.Inc()
	f.trim(now)
	return nil
}

// ViewScore converts s (at offset of the scores topic) as services/sink
// converts it to a daily_scores row; a value the sink refuses is an error.
func ViewScore(s *avro.DailyScore, offset int64) (view.Score, error) {
	date, err := time.Parse(time.DateOnly, s.Date)
	if err != nil {
		return view.Score{}, fmt.Errorf("date: %w", err)
	}
	var bad error
	u32 := func(field string, v int64) uint32 {
		if v < 0 || v > math.MaxUint32 {
			if bad == nil {
				bad = fmt.Errorf("field %s: %d out of range", field, v)
			}
			return 0
		}
		return uint32(v)
	}
	vs := view.Score{Date: view.Day(date.UnixMilli()), Offset: offset, ID: s.ID, Device: s.DeviceID, TZ: s.TZ,
		WindowStartMs: s.WindowStart.UnixMilli(), WindowEndMs: s.WindowEnd.UnixMilli(), ConfigVersion: s.ConfigVersion,
		DistanceKm: s.DistanceKm, GPSKm: s.GpsKm, OdometerKm: s.OdometerKm,
		DrivingS: u32("driving_s", s.DrivingS), HarshBrake: u32("harsh_brake", int64(s.HarshBrake)),
		HarshAccel: u32("harsh_accel", int64(s.HarshAccel)), HarshCorner: u32("harsh_corner", int64(s.HarshCorner)),
		SpeedingS: u32("speeding_s", s.SpeedingS), NightS: u32("night_s", s.NightS), FatigueEvents: u32("fatigue_events", int64(s.FatigueEvents)),
		Events: uint64(s.Events), GPSJumps: u32("gps_jumps", int64(s.GpsJumps)), HDOPRejected: uint64(s.HDOPRejected),
		OdometerRollbacks: u32("odometer_rollbacks", int64(s.OdometerRollbacks)), Score: float32(s.Score), Points: s.Points,
		Revision: u32("revision", int64(s.Revision)), LateAdded: uint64(max(s.LateAdded, 0))}
	if s.LateEvents != nil {
		vs.LateEvents, vs.HasLateEvents = uint64(max(*s.LateEvents, 0)), true
	}
	if len(s.Flags) > 0 {
		vs.Flags = s.Flags
	}
	if len(s.FlagReasons) > 0 {
		vs.FlagReasons = s.FlagReasons
	}
	return vs, bad
}

// Requests applies one record of minecart.ledger.requests: an erasure
// request that names a vehicle (`minecart accounts erase`) makes the view
// forget the vehicle's data up to the request's time (View.Forget); the
// other requests are not the view's. It never fails: a bad record is
// logged and counted.
func (f *Feed) Requests(rec pipelines.Record) error {
	f.seen(&rec, func(int64) {}, 0)
	name, err := f.serde.Name(rec.Value)
	if err == nil && name != schemas.DebitRequest {
		return nil // other records of the topic (transfers, campaigns) are not the view's
	}
	var r avro.DebitRequest
	if err == nil {
		err = f.serde.Unmarshal(rec.Value, &r)
	}
	if err != nil {
		f.bad.WithLabelValues(rec.Topic).Inc()
		f.log.Warn("owner view: request record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return nil
	}
	if r.Kind == avro.RequestKindErasure && r.VehicleID != "" {
		f.view.Forget(r.VehicleID, r.RequestedAt.UnixMilli())
		f.log.Info("owner view: erased vehicle forgotten", "request", r.RequestID)
	}
	return nil
}

// TelemetryCaught is the caught function of the telemetry topic's Follow.
func (f *Feed) TelemetryCaught() { f.view.MarkCaught(true) }

// ScoresCaught is the caught function of the scores topic's Follow.
func (f *Feed) ScoresCaught() { f.view.MarkCaught(false) }

// TopicReader is what Run needs of a reader of one topic: kafka.Reader
// (read_committed, from the topic's start).
type TopicReader interface {
	Follow(ctx context.Context, topic string, fn func(pipelines.Record) error, caught func()) error
	Ends(ctx context.Context, topic string) (map[int32]int64, error)
	Close()
}

// Run feeds the view until ctx is done: it follows the clean telemetry,
// the scores and the ledger's requests (erasures) topics, each with its
// own reader from newReader, and checks their lag every lagEvery (default
// 5 s) with a fourth. It returns
// nil when ctx is done, or the first reader's error.
func (f *Feed) Run(ctx context.Context, newReader func() (TopicReader, error), lagEvery time.Duration) error {
	if lagEvery <= 0 {
		lagEvery = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.ctx = ctx
	topics := []string{pipelines.TopicTelemetryClean, pipelines.TopicScores, pipelines.TopicLedgerRequests}
	feeds := []struct {
		fn     func(pipelines.Record) error
		caught func()
	}{{f.Telemetry, f.TelemetryCaught}, {f.Scores, f.ScoresCaught}, {f.Requests, f.view.MarkErasuresCaught}}
	var readers []TopicReader
	defer func() {
		for _, rd := range readers {
			rd.Close()
		}
	}()
	for range len(topics) + 1 {
		rd, err := newReader()
		if err != nil {
			return fmt.Errorf("owner view: %w", err)
		}
		readers = append(readers, rd)
	}
	errs := make(chan error, len(topics))
	for i, topic := range topics {
		go func() {
			err := readers[i].Follow(ctx, topic, feeds[i].fn, feeds[i].caught)
			if err != nil {
				err = fmt.Errorf("owner view: %w", err)
			}
			errs <- err
		}()
	}
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	var first error
	for running := len(topics); running > 0; {
		select {
		case err := <-errs:
			running--
			if first == nil && err != nil {
				first = err
				cancel()
			}
		case <-t.C:
			for _, topic := range topics {
				if ends, err := readers[len(topics)].Ends(ctx, topic); err == nil {
					f.Lag(topic, ends)
				}
			}
		case <-ctx.Done():
			// wait for the follows to return
			for ; running > 0; running-- {
				if err := <-errs; first == nil && err != nil && ctx.Err() == nil {
					first = err
				}
			}
		}
	}
	return first
}
