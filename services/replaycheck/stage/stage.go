// Package stage runs the global replay check on the pipelines runtime
// (docs/scoring.md, "Global replay check"): trip fingerprints in, one
// record per LSH band keyed by the band key (written by scoring at each
// day close); per-band postings (replay.Postings) in a compacted
// changelog; replay verdicts out, keyed by the copying vehicle's id, to
// the verdicts topic that scoring reads co-partitioned with the clean
// telemetry, all in the transaction that commits the input offsets.
package stage

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/services/scoring/replay"
)

// Config configures the replay check stage.
type Config struct {
	// Name is the consumer group and transactional id prefix (default "replaycheck").
	Name string
	// Days is how many days of fingerprints each task keeps (default 30,
	// as scoring's ReplayDays), Budget how many per day at most (default
	// 200,000).
	Days, Budget int
	// Topics (defaults pipelines.TopicFingerprints, TopicReplayVerdicts,
	// TopicReplayCheckChangelog).
	Input, Verdicts, Changelog string
	// Registerer receives the stage's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "replaycheck"
	}
	if c.Days == 0 {
		c.Days = 30
	}
	if c.Budget == 0 {
		c.Budget = 200_000
	}
	if c.Input == "" {
		c.Input = pipelines.TopicFingerprints
	}
	if c.Verdicts == "" {
		c.Verdicts = pipelines.TopicReplayVerdicts
	}
	if c.Changelog == "" {
		c.Changelog = pipelines.TopicReplayCheckChangelog
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewStage returns the replay check stage (see the package comment).
func NewStage(cfg Config) (pipelines.Stage, error) {
	cfg = cfg.withDefaults()
	if cfg.Days < 1 || cfg.Budget < 1 {
		return pipelines.Stage{}, fmt.Errorf("replaycheck: days %d and budget %d must be >= 1", cfg.Days, cfg.Budget)
	}
	if _, err := replay.NewPostings(replay.DefaultConfig(), cfg.Days, cfg.Budget); err != nil {
		return pipelines.Stage{}, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return pipelines.Stage{}, err
	}
	return pipelines.Stage{
		Name:      cfg.Name,
		Inputs:    []string{cfg.Input},
		Changelog: cfg.Changelog,
		NewProcessor: func(_ context.Context, t pipelines.Task) (pipelines.Processor, error) {
			ps, err := replay.NewPostings(replay.DefaultConfig(), cfg.Days, cfg.Budget)
			if err != nil {
				return nil, err
			}
			return &processor{cfg: &cfg, m: m, task: t.Partition, ps: ps}, nil
		},
	}, nil
}

type processor struct {
	cfg  *Config
	m    *metrics
	task int32
	ps   *replay.Postings
	held int // fingerprints last reported to the gauge
}

// Codes of dead-lettered fingerprint records.
const (
	CodeBadFingerprint = "bad_fingerprint"
	CodeBadBand        = "bad_band_key"
)

// Process folds one (fingerprint, band) record into the postings and
// emits the verdicts it settles.
func (p *processor) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	fp, err := replay.Decode(rec.Value)
	if err != nil {
		return pipelines.Reject(CodeBadFingerprint, err)
	}
	if len(rec.Key) != 8 {
		return pipelines.Reject(CodeBadBand, fmt.Errorf("key of %d bytes, want an 8-byte band key", len(rec.Key)))
	}
	key := binary.BigEndian.Uint64(rec.Key)
	band := -1
	for b := range replay.Bands {
		if replay.BandKey(&fp, b) == key {
			band = b
			break
		}
	}
	if band < 0 {
		return pipelines.Reject(CodeBadBand, fmt.Errorf("key %016x is no band of %s", key, replay.Key(&fp)))
	}
	p.m.records.Inc()
	for _, v := range p.ps.Offer(&fp, band) {
		out.Emit(p.cfg.Verdicts, []byte(v.Vehicle), replay.AppendVerdict(nil, &v))
		p.m.verdicts.Inc()
		p.cfg.Logger.Info("replay verdict", "task", p.task, "verdict", v.ID(), "contain_permille", v.ContainPermille)
	}
	return nil
}

// Flush writes the postings changed in the batch to the changelog.
func (p *processor) Flush(_ context.Context, out pipelines.Emitter) error {
	p.ps.Flush(func(key string, value []byte) {
		out.EmitTo(p.cfg.Changelog, p.task, []byte(key), value)
	})
	if n := p.ps.Len(); n != p.held {
		p.m.held.Add(float64(n - p.held))
		p.held = n
	}
	return nil
}

// Restore replays one changelog record; one that does not decode is
// logged and counted, not fatal.
func (p *processor) Restore(_ context.Context, rec pipelines.Record) error {
	if err := p.ps.Restore(string(rec.Key), rec.Value); err != nil {
		p.m.restoreErrors.Inc()
		p.cfg.Logger.Error("replaycheck changelog record skipped", "task", p.task, "key", string(rec.Key), "offset", rec.Offset,
			"err", err)
	}
	return nil
}

// Close reports the task's postings as no longer held here.
func (p *processor) Close() error {
	p.m.held.Sub(float64(p.held))
	p.held = 0
	return nil
}

type metrics struct {
	records, verdicts, restoreErrors prometheus.Counter
	held                             prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		records:       m.Counter("minecart_replaycheck_records_total", "Fingerprint band records folded into the postings."),
		verdicts:      m.Counter("minecart_replaycheck_verdicts_total", "Replay verdicts written (one per copied trip and original pair)."),
		restoreErrors: m.Counter("minecart_replaycheck_restore_errors_total", "Changelog records that could not be restored and were skipped."),
		held:          m.Gauge("minecart_replaycheck_fingerprints", "Fingerprints held in the postings of this process."),
	}, m.Err()
}
