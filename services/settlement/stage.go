package settlement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
)

// StageName is the settlement stage's name (consumer group, transactional
// id prefix, metrics label).
const StageName = "settlement"

// Config configures the settlement stage.
type Config struct {
	Policy     Policy
	Serde      *schemas.Serde
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics not registered
	// TickEvery is how often pending redemptions are checked for the
	// ledger timeout and finished days are closed (default 1s).
	TickEvery time.Duration
	// EnsurePartner, if set, is called (once per partner and task) before
	// a catalog item of a partner is taken in, to create the partner's
	// redemptions topic: an order to a missing topic would fail its
	// transaction again and again. PartnerTopicsEnsurer(cfg) is the usual
	// value; errors are retried.
	EnsurePartner func(ctx context.Context, partner string) error
}

// PartnerTopicsEnsurer returns an EnsurePartner that creates the partner's
// topics (PartnerTopics) if they are missing, connecting with cfg (brokers,
// and ClientOptions for SASL/TLS).
func PartnerTopicsEnsurer(cfg kafka.Config) func(ctx context.Context, partner string) error {
	return func(ctx context.Context, partner string) error {
		return kafka.EnsureTopicsWith(ctx, cfg, PartnerTopics(partner))
	}
}

// Validate reports a config the stage cannot run with.
func (c Config) Validate() error {
	if c.Serde == nil {
		return errors.New("settlement: no serde")
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("settlement: %w", err)
	}
	if c.TickEvery < 0 {
		return errors.New("settlement: negative tick interval")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TickEvery == 0 {
		c.TickEvery = time.Second
	}
	return c
}

// Inputs are the settlement stage's input topics. All have one partition,
// so one task sees every record in one order: that is what keeps balances
// and stock exact across replicas.
var Inputs = []string{
	pipelines.TopicAccounts, pipelines.TopicCatalog, pipelines.TopicLedgerEntries,
	pipelines.TopicRedemptions, pipelines.TopicPartnerAcks,
}

// NewStage returns the settlement stage: it consumes Inputs, keeps its book
// in pipelines.TopicSettlementLog and writes redemption statuses, partner
// orders, debit requests, settled credits and daily statements. A config
// that does not Validate makes every task fail to start.
func NewStage(cfg Config) pipelines.Stage {
	cfg = cfg.withDefaults()
	m, merr := newMetrics(cfg.Registerer)
	return pipelines.Stage{
		Name:      StageName,
		Inputs:    Inputs,
		Changelog: pipelines.TopicSettlementLog,
		TickEvery: cfg.TickEvery,
		NewProcessor: func(ctx context.Context, t pipelines.Task) (pipelines.Processor, error) {
			if err := errors.Join(cfg.Validate(), merr); err != nil {
				return nil, err
			}
			b, err := NewBook(cfg.Policy)
			if err != nil {
				return nil, err
			}
			return &processor{book: b, codec: NewCodec(cfg.Serde), m: m, log: cfg.Logger.With("stage", StageName), task: t,
				ensure: cfg.EnsurePartner, partners: map[string]bool{}}, nil
		},
	}
}

// metrics are the settlement stage's series.
type metrics struct {
	alerts      *prometheus.CounterVec // kind
	redemptions *prometheus.CounterVec // status
	points      *prometheus.CounterVec // direction: minted, redeemed
	outstanding prometheus.Gauge
	invariantOK prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		alerts:      m.CounterVec("minecart_settlement_alerts_total", "Anomalies settlement found, by kind (invariant, overdraft, leaf_gap, late_debit, ...). Any increase needs a human.", "kind"),
		redemptions: m.CounterVec("minecart_settlement_redemptions_total", "Redemption state changes, by new status.", "status"),
		points:      m.CounterVec("minecart_settlement_points_total", "Points settled, by direction (minted, redeemed).", "direction"),
		outstanding: m.Gauge("minecart_settlement_points_outstanding", "Sum of every account balance at the last statement."),
		invariantOK: m.Gauge("minecart_settlement_invariant_ok", "1 if the last statement found sum(balances) = minted - redeemed, else 0."),
	}, m.Err()
}

// processor feeds one task's records to the book.
type processor struct {
	book     *Book
	codec    Codec
	m        *metrics
	log      *slog.Logger
	task     pipelines.Task
	restored bool
	ensure   func(ctx context.Context, partner string) error
	partners map[string]bool // partners whose topics exist
}

// Restore replays one changelog record.
func (p *processor) Restore(_ context.Context, rec pipelines.Record) error {
	if err := p.book.Restore(string(rec.Key), rec.Value); err != nil {
		// The changelog is settlement's own: a record it cannot read is a
		// bug or tampering, never something to skip.
		return fmt.Errorf("restore offset %d: %w", rec.Offset, err)
	}
	return nil
}

func (p *processor) ready() {
	if !p.restored {
		p.book.Restored()
		p.restored = true
		bal, res, n := p.book.Totals()
		p.log.Info("settlement book restored", "accounts", n, "balances", bal, "reserved", res, "pending", len(p.book.pending))
	}
}

// Process handles one input record.
func (p *processor) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	p.ready()
	tx, err := p.apply(ctx, rec)
	if err != nil {
		if code, ok := pipelines.RejectCode(err); ok {
			p.log.Warn("settlement input rejected", "topic", rec.Topic, "offset", rec.Offset, "code", code, "err", err)
		}
		return err
	}
	return p.emit(tx, out)
}

func (p *processor) apply(ctx context.Context, rec pipelines.Record) (*Tx, error) {
	// Bad bytes or a record of the wrong shape are dead-lettered; other
	// decode errors (a schema registry out of reach) are retried.
	decodeErr := func(err error) error {
		if errors.Is(err, schemas.ErrMalformed) || errors.Is(err, schemas.ErrUnknownSchema) || errors.Is(err, ErrBadInput) {
			return pipelines.Reject("decode", err)
		}
		return err
	}
	var (
		tx  *Tx
		err error
	)
	switch rec.Topic {
	case pipelines.TopicLedgerEntries:
		e, derr := p.codec.DecodeEntry(rec.Value)
		if derr != nil {
			return nil, decodeErr(derr)
		}
		tx, err = p.book.Apply(e)
	case pipelines.TopicAccounts:
		if rec.Value == nil {
			tx, err = p.book.Bind(Binding{VehicleID: string(rec.Key), UpdatedAt: rec.Timestamp.UTC()})
			break
		}
		x, derr := p.codec.DecodeBinding(rec.Value)
		if derr != nil {
			return nil, decodeErr(derr)
		}
		if x.VehicleID != string(rec.Key) {
			// Compaction keeps the last record per key: a key that is not
			// the vehicle would make the table and the book disagree.
			return nil, pipelines.Reject("key_mismatch", fmt.Errorf("binding of vehicle %q under key %q", x.VehicleID, rec.Key))
		}
		tx, err = p.book.Bind(x)
	case pipelines.TopicCatalog:
		if rec.Value == nil {
			tx = p.book.DeleteItem(string(rec.Key))
			break
		}
		it, derr := p.codec.DecodeItem(rec.Value)
		if derr != nil {
			return nil, decodeErr(derr)
		}
		if it.Key() != string(rec.Key) {
			return nil, pipelines.Reject("key_mismatch", fmt.Errorf("catalog item %q under key %q", it.Key(), rec.Key))
		}
		if p.ensure != nil && !p.partners[it.Partner] && ValidID(it.Partner) == nil {
			if err := p.ensure(ctx, it.Partner); err != nil {
				return nil, fmt.Errorf("partner %s topics: %w", it.Partner, err)
			}
			p.partners[it.Partner] = true
		}
		tx, err = p.book.PutItem(it)
	case pipelines.TopicRedemptions:
		r, derr := p.codec.DecodeRequest(rec.Value)
		if derr != nil {
			return nil, decodeErr(derr)
		}
		if r.RequestedAt.IsZero() || r.RequestedAt.Unix() == 0 {
			r.RequestedAt = rec.Timestamp.UTC()
		}
		tx, err = p.book.Redeem(r)
	case pipelines.TopicPartnerAcks:
		a, derr := p.codec.DecodeAck(rec.Value)
		if derr != nil {
			return nil, decodeErr(derr)
		}
		tx, err = p.book.Ack(a)
	default:
		return nil, pipelines.Reject("unknown_topic", fmt.Errorf("settlement does not read %s", rec.Topic))
	}
	if errors.Is(err, ErrBadInput) {
		return nil, pipelines.Reject("bad_input", err)
	}
	return tx, err
}

// Tick times out pending redemptions and closes finished days.
func (p *processor) Tick(_ context.Context, now time.Time, out pipelines.Emitter) error {
	p.ready()
	return p.emit(p.book.Tick(now), out)
}

// emit encodes and emits everything tx writes, then commits it to the
// book. An encoding error leaves the book unchanged.
func (p *processor) emit(tx *Tx, out pipelines.Emitter) error {
	type rec struct {
		topic      string
		key, value []byte
		changelog  bool
	}
	var recs []rec
	for _, c := range tx.Changes() {
		v, err := EncodeChange(c)
		if err != nil {
			return err
		}
		recs = append(recs, rec{pipelines.TopicSettlementLog, []byte(c.Key), v, true})
	}
	for _, r := range tx.Status {
		v, err := p.codec.EncodeRedemption(r)
		if err != nil {
			return fmt.Errorf("redemption status %s: %w", r.ID, err)
		}
		recs = append(recs, rec{topic: pipelines.TopicRedemptionStatus, key: []byte(r.ID), value: v})
	}
	for _, r := range tx.Orders {
		v, err := p.codec.EncodeRedemption(r)
		if err != nil {
			return fmt.Errorf("partner order %s: %w", r.ID, err)
		}
		recs = append(recs, rec{topic: pipelines.PartnerRedemptionsTopic(r.Partner), key: []byte(r.ID), value: v})
	}
	for _, d := range tx.Debits {
		v, err := p.codec.EncodeDebitRequest(d)
		if err != nil {
			return fmt.Errorf("debit request %s: %w", d.RequestID, err)
		}
		recs = append(recs, rec{topic: pipelines.TopicLedgerRequests, key: []byte(d.Account), value: v})
	}
	for _, c := range tx.Credits {
		v, err := p.codec.EncodeCredit(c)
		if err != nil {
			return fmt.Errorf("settled credit %s: %w", c.ScoreID, err)
		}
		recs = append(recs, rec{topic: pipelines.TopicRewardCredits, key: []byte(c.Account), value: v})
	}
	for _, s := range tx.Statements {
		v, err := p.codec.EncodeStatement(s)
		if err != nil {
			return fmt.Errorf("statement %s: %w", s.Day, err)
		}
		recs = append(recs, rec{topic: pipelines.TopicStatements, key: []byte(s.Day), value: v})
	}
	for _, r := range recs {
		if r.changelog {
			out.EmitTo(r.topic, p.task.Partition, r.key, r.value)
		} else {
			out.Emit(r.topic, r.key, r.value)
		}
	}
	before := p.book.meta
	tx.Commit()
	after := p.book.meta
	p.m.points.WithLabelValues("minted").Add(float64(after.Minted - before.Minted))
	p.m.points.WithLabelValues("redeemed").Add(float64(after.Redeemed - before.Redeemed))
	for _, r := range tx.Status {
		p.m.redemptions.WithLabelValues(string(r.Status)).Inc()
	}
	for _, s := range tx.Statements {
		p.m.outstanding.Set(float64(s.BalanceSum))
		if s.InvariantOK {
			p.m.invariantOK.Set(1)
		} else {
			p.m.invariantOK.Set(0)
		}
		p.log.Info("settlement statement", "day", s.Day, "minted", s.Minted, "redeemed", s.Redeemed,
			"outstanding", s.Outstanding, "balance_sum", s.BalanceSum, "invariant_ok", s.InvariantOK)
	}
	for _, a := range tx.Alerts {
		p.m.alerts.WithLabelValues(a.Kind).Inc()
		p.log.Error("settlement alert", "kind", a.Kind, "msg", a.Msg)
	}
	return nil
}
