// Package stage is the settlement stage: it feeds the settlement inputs
// (ledger entries, bindings, catalog, redemption requests, partner acks) to
// the pure settlement.Book, one record at a time, keeps the book in its
// changelog and emits what each transaction of the book writes. It depends
// on the pipelines contract only; mains wire it to the runtime.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/shred"
)

// Name is the settlement stage's name (consumer group, transactional id
// prefix, metrics label).
const Name = "settlement"

// Config configures the settlement stage.
type Config struct {
	Policy     settlement.Policy // default settlement.DefaultPolicy()
	Serde      *schemas.Serde
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics not registered
	// TickEvery is how often pending redemptions are checked for the
	// ledger timeout and finished days are closed (default 1s).
	TickEvery time.Duration
	// EnsurePartner, if set, is called (once per partner and task) before
	// a catalog item of a partner is taken in, to create the partner's
	// topics (PartnerTopics): an order to a missing topic would fail its
	// transaction again and again. Mains pass kafka.EnsureTopicsWith over
	// PartnerTopics; errors are retried.
	EnsurePartner func(ctx context.Context, partner string) error
	// Pseudonyms opens the pseudonyms of the ledger's entries (the leaves
	// name vehicles and accounts only by pseudonym; docs/ledger.md,
	// "Pseudonymous leaves"): settlement maps them back to the vehicle and
	// account ids its bindings and balances are keyed by. A pseudonym
	// without a key (erased) stays as it is: its credit is held in
	// "vehicle:<pseudonym>", linked to no one. Nil: entries are taken as
	// they are.
	Pseudonyms pseudonym.Resolver
	// SealStatus seals each record of pipelines.TopicRedemptionStatus for
	// its owner's account (crypto-shredding, docs/privacy.md): record key =
	// the account's pseudonym, value = a shred Sealed envelope of the
	// framed Redemption, under the key derived from the account's
	// pseudonym key (found in the keys read so far, else with
	// Pseudonyms.Lookup; settlement never makes a key). A status of an account without a key (none until the first
	// ledger entry naming the account, e.g. the first redemption's hold;
	// or erased) is written in clear with its owner, customer and
	// idempotency key emptied, under its redemption id. Needs Pseudonyms.
	SealStatus bool
}

// Validate reports a config the stage cannot run with.
func (c Config) Validate() error {
	if c.Serde == nil {
		return errors.New("settlement: no serde")
	}
	if c.Policy != (settlement.Policy{}) {
		if err := c.Policy.Validate(); err != nil {
			return fmt.Errorf("settlement: %w", err)
		}
	}
	if c.TickEvery < 0 {
		return errors.New("settlement: negative tick interval")
	}
	if c.SealStatus && c.Pseudonyms == nil {
		return errors.New("settlement: sealing the redemption status needs the pseudonyms")
	}
	return nil
}

// Inputs are the settlement stage's input topics. All have one partition,
// so one task sees every record in one order: that is what keeps balances
// and stock exact across replicas.
var Inputs = []string{
	pipelines.TopicAccounts, pipelines.TopicCatalog, pipelines.TopicLedgerEntries,
	pipelines.TopicRedemptions, pipelines.TopicPartnerAcks, pipelines.TopicTransfers,
}

// NewStage returns the settlement stage: it consumes Inputs, keeps its book
// in pipelines.TopicSettlementLog and writes redemption statuses, partner
// orders, debit requests, settled credits and daily statements.
func NewStage(cfg Config) (pipelines.Stage, error) {
	if err := cfg.Validate(); err != nil {
		return pipelines.Stage{}, err
	}
	if cfg.Policy == (settlement.Policy{}) {
		cfg.Policy = settlement.DefaultPolicy()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TickEvery == 0 {
		cfg.TickEvery = time.Second
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return pipelines.Stage{}, fmt.Errorf("settlement: %w", err)
	}
	log := cfg.Logger.With("stage", Name)
	return pipelines.Stage{
		Name:      Name,
		Inputs:    Inputs,
		Changelog: pipelines.TopicSettlementLog,
		TickEvery: cfg.TickEvery,
		NewProcessor: func(_ context.Context, t pipelines.Task) (pipelines.Processor, error) {
			b, err := settlement.NewBook(cfg.Policy)
			if err != nil {
				return nil, err
			}
			return &processor{book: b, serde: cfg.Serde, m: m, log: log, task: t,
				ensure: cfg.EnsurePartner, partners: map[string]bool{}, names: cfg.Pseudonyms, seal: cfg.SealStatus}, nil
		},
	}, nil
}

// metrics are the settlement stage's series.
type metrics struct {
	alerts      *prometheus.CounterVec // kind
	redemptions *prometheus.CounterVec // status
	points      *prometheus.CounterVec // direction: minted, redeemed
	outstanding prometheus.Gauge
	invariantOK prometheus.Gauge
	transfers   *prometheus.CounterVec // status, reason
	status      *prometheus.CounterVec // form: sealed, anonymous
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		alerts:      m.CounterVec("minecart_settlement_alerts_total", "Anomalies settlement found, by kind (invariant, overdraft, leaf_gap, late_debit, ...). Any increase needs a human.", "kind"),
		redemptions: m.CounterVec("minecart_settlement_redemptions_total", "Redemption state changes, by new status.", "status"),
		points:      m.CounterVec("minecart_settlement_points_total", "Points settled, by direction (minted, redeemed, rescored_down: rescores taking points back).", "direction"),
		outstanding: m.Gauge("minecart_settlement_points_outstanding", "Sum of every account balance at the last statement."),
		invariantOK: m.Gauge("minecart_settlement_invariant_ok", "1 if the last statement found sum(balances) = minted - redeemed, else 0."),
		transfers:   m.CounterVec("minecart_settlement_transfers_total", "Transfer decisions, by status (ACCEPTED, REJECTED; replays count their first result) and reason.", "status", "reason"),
		status:      m.CounterVec("minecart_settlement_status_records_total", "Redemption status records written with SealStatus, by form (sealed: for the owner's account; anonymous: the account has no key, owner, customer and idempotency key emptied; docs/privacy.md).", "form"),
	}, m.Err()
}

// processor feeds one task's records to the book.
type processor struct {
	book     *settlement.Book
	serde    *schemas.Serde
	m        *metrics
	log      *slog.Logger
	task     pipelines.Task
	restored bool
	ensure   func(ctx context.Context, partner string) error
	partners map[string]bool // partners whose topics exist
	names    pseudonym.Resolver
	seal     bool // Config.SealStatus
}

// open maps the pseudonymous identities of a ledger entry to clear ids.
func (p *processor) open(ctx context.Context, e *settlement.Entry) error {
	if p.names == nil {
		return nil
	}
	if pseudonym.Is(e.VehicleID) {
		e.VehiclePseudonym = e.VehicleID
	}
	for _, f := range []*string{&e.VehicleID, &e.Account, &e.CounterAccount} {
		if !pseudonym.Is(*f) {
			continue
		}
		o, err := p.names.Open(ctx, *f)
		switch {
		case errors.Is(err, pseudonym.ErrUnknown):
			p.m.alerts.WithLabelValues("unlinkable_entry").Inc()
			p.log.Warn("ledger entry names a pseudonym without a key (erased): settled unlinked", "leaf", e.Proof.LeafIndex, "pseudonym", *f)
		case err != nil:
			return err // the topic out of reach: retried
		default:
			*f = o.ID
		}
	}
	return nil
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
		p.log.Info("settlement book restored", "accounts", n, "balances", bal, "reserved", res, "pending", p.book.Pending())
	}
}

// Process handles one input record.
func (p *processor) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	p.ready()
	if rec.Topic == pipelines.TopicLedgerEntries && pipelines.IsCheckpointRecord(&rec) {
		// The cosigned checkpoint the ledger's publisher writes among
		// the entries (docs/ledger.md): nothing to settle, tested by its
		// header before any decoding.
		return nil
	}
	tx, err := p.apply(ctx, rec)
	if err != nil {
		if code, ok := pipelines.RejectCode(err); ok {
			p.log.Warn("settlement input rejected", "topic", rec.Topic, "offset", rec.Offset, "code", code, "err", err)
		}
		return err
	}
	if err := p.ensureBonusPartners(ctx, tx); err != nil {
		return err
	}
	return p.emit(ctx, tx, out)
}

// ensureBonusPartners creates, once per partner and task, the topics of
// the partners whose campaigns' bonuses tx settles (a partner may run
// campaigns without a catalog item): a bonus to a missing topic would
// fail its transaction again and again. Errors are retried.
func (p *processor) ensureBonusPartners(ctx context.Context, tx *settlement.Tx) error {
	if p.ensure == nil || tx == nil {
		return nil
	}
	for _, c := range tx.Credits {
		if c.Kind != settlement.KindBonus {
			continue
		}
		if partner, _, ok := settlement.BonusPartner(c.ScoreID); ok && !p.partners[partner] {
			if err := p.ensure(ctx, partner); err != nil {
				return fmt.Errorf("partner %s topics: %w", partner, err)
			}
			p.partners[partner] = true
		}
	}
	return nil
}

func (p *processor) apply(ctx context.Context, rec pipelines.Record) (*settlement.Tx, error) {
	var (
		tx  *settlement.Tx
		err error
	)
	switch rec.Topic {
	case pipelines.TopicLedgerEntries:
		var e avro.LedgerEntry
		if err := p.decode(rec, &e); err != nil {
			return nil, err
		}
		se := settlement.EntryFrom(&e)
		if err := p.open(ctx, &se); err != nil {
			return nil, err
		}
		tx, err = p.book.Apply(se)
	case pipelines.TopicAccounts:
		if rec.Value == nil {
			tx, err = p.book.Bind(settlement.Binding{VehicleID: string(rec.Key), UpdatedAt: rec.Timestamp.UTC()})
			break
		}
		var x avro.AccountBinding
		if err := p.decode(rec, &x); err != nil {
			return nil, err
		}
		if x.VehicleID != string(rec.Key) {
			// Compaction keeps the last record per key: a key that is not
			// the vehicle would make the table and the book disagree.
			return nil, pipelines.Reject("key_mismatch", fmt.Errorf("binding of vehicle %q under key %q", x.VehicleID, rec.Key))
		}
		tx, err = p.book.Bind(settlement.BindingFrom(&x))
	case pipelines.TopicCatalog:
		if rec.Value == nil {
			tx = p.book.DeleteItem(string(rec.Key))
			break
		}
		var r avro.CatalogItem
		if err := p.decode(rec, &r); err != nil {
			return nil, err
		}
		it := settlement.ItemFrom(&r)
		if it.Key() != string(rec.Key) {
			return nil, pipelines.Reject("key_mismatch", fmt.Errorf("catalog item %q under key %q", it.Key(), rec.Key))
		}
		if p.ensure != nil && !p.partners[it.Partner] && settlement.ValidID(it.Partner) == nil {
			if err := p.ensure(ctx, it.Partner); err != nil {
				return nil, fmt.Errorf("partner %s topics: %w", it.Partner, err)
			}
			p.partners[it.Partner] = true
		}
		tx, err = p.book.PutItem(it)
	case pipelines.TopicRedemptions:
		var r avro.RedemptionRequest
		if err := p.decode(rec, &r); err != nil {
			return nil, err
		}
		if r.RequestedMs.IsZero() || r.RequestedMs.Unix() == 0 {
			r.RequestedMs = rec.Timestamp.UTC()
		}
		tx, err = p.book.Redeem(r)
	case pipelines.TopicPartnerAcks:
		var a avro.PartnerAck
		if err := p.decode(rec, &a); err != nil {
			return nil, err
		}
		tx, err = p.book.Ack(settlement.AckFrom(&a))
	case pipelines.TopicTransfers:
		name, nerr := p.serde.Name(rec.Value)
		if errors.Is(nerr, schemas.ErrMalformed) || errors.Is(nerr, schemas.ErrUnknownSchema) {
			return nil, pipelines.Reject("decode", nerr)
		} else if nerr != nil {
			return nil, nerr
		}
		switch name {
		case schemas.TransferBatch:
			var r avro.TransferBatch
			if err := p.decode(rec, &r); err != nil {
				return nil, err
			}
			b := settlement.TransferBatchFrom(&r)
			if b.RequestedAt.IsZero() || b.RequestedAt.Unix() == 0 {
				b.RequestedAt = rec.Timestamp.UTC()
			}
			var results []settlement.Transfer
			tx, results, err = p.book.Transfers(b)
			for _, x := range results {
				p.m.transfers.WithLabelValues(string(x.Status), x.Reason).Inc()
			}
		case schemas.AccountFlags:
			var r avro.AccountFlags
			if err := p.decode(rec, &r); err != nil {
				return nil, err
			}
			tx, err = p.book.SetAccountFlags(r)
		default:
			return nil, pipelines.Reject("unexpected_record", fmt.Errorf("%s on %s", name, rec.Topic))
		}
	default:
		return nil, pipelines.Reject("unknown_topic", fmt.Errorf("settlement does not read %s", rec.Topic))
	}
	if errors.Is(err, settlement.ErrBadInput) {
		return nil, pipelines.Reject("bad_input", err)
	}
	return tx, err
}

// decode unmarshals rec's value into r. Bad bytes or a record of another
// schema are dead-lettered; other errors (a schema registry out of reach)
// are retried.
func (p *processor) decode(rec pipelines.Record, r schemas.Record) error {
	err := p.serde.Unmarshal(rec.Value, r)
	if errors.Is(err, schemas.ErrMalformed) || errors.Is(err, schemas.ErrUnknownSchema) {
		return pipelines.Reject("decode", err)
	}
	return err
}

// keyDirectory is a Resolver that also shows the keys read so far
// (follow.Follower).
type keyDirectory interface {
	Directory() *pseudonym.Directory
}

// accountKey is the opening of account id: from the keys the follower has
// read if it is there (no round trip), else after a Lookup (which reads the
// pseudonyms topic to its end first). A key tombstoned a moment ago may
// still be found in the directory: a status sealed under it opens for no
// one, as if written before the erasure.
func (p *processor) accountKey(ctx context.Context, id string) (pseudonym.Opening, error) {
	if d, ok := p.names.(keyDirectory); ok {
		if o, ok := d.Directory().Lookup(pseudonym.Account, id); ok {
			return o, nil
		}
	}
	return p.names.Lookup(ctx, pseudonym.Account, id)
}

// sealStatus is the record key and value of a redemption's status with
// Config.SealStatus: sealed for its owner's account (key = the account's
// pseudonym), or, for an account without a key, the clear record with
// owner, customer and idempotency key emptied (key = the redemption id). An error is the
// pseudonyms topic out of reach (retried).
func (p *processor) sealStatus(ctx context.Context, r settlement.Redemption) (key string, value []byte, form string, err error) {
	a := r.Avro()
	o, err := p.accountKey(ctx, r.Owner)
	if errors.Is(err, pseudonym.ErrUnknown) {
		a.Owner, a.Customer, a.IdempotencyKey = "", "", ""
		v, err := p.serde.Marshal(a)
		if err != nil {
			return "", nil, "", fmt.Errorf("redemption %s: %w", r.ID, err)
		}
		return r.ID, v, "anonymous", nil
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("redemption %s: key of its account: %w", r.ID, err)
	}
	inner, err := p.serde.Marshal(a)
	if err != nil {
		return "", nil, "", fmt.Errorf("redemption %s: %w", r.ID, err)
	}
	s, err := shred.Seal(o, pipelines.TopicRedemptionStatus, inner)
	if err != nil {
		return "", nil, "", fmt.Errorf("redemption %s: %w", r.ID, err)
	}
	v, err := p.serde.Marshal(s)
	if err != nil {
		return "", nil, "", fmt.Errorf("redemption %s: %w", r.ID, err)
	}
	return o.Pseudonym, v, "sealed", nil
}

// Tick times out pending redemptions and closes finished days.
func (p *processor) Tick(ctx context.Context, now time.Time, out pipelines.Emitter) error {
	p.ready()
	return p.emit(ctx, p.book.Tick(now), out)
}

// emit encodes and emits everything tx writes, then commits it to the
// book. An encoding error leaves the book unchanged.
func (p *processor) emit(ctx context.Context, tx *settlement.Tx, out pipelines.Emitter) error {
	type rec struct {
		topic      string
		key, value []byte
	}
	var recs []rec
	for _, c := range tx.Changes() {
		v, err := settlement.EncodeChange(c)
		if err != nil {
			return err
		}
		recs = append(recs, rec{pipelines.TopicSettlementLog, []byte(c.Key), v})
	}
	type record struct {
		topic, key string
		r          schemas.Record
	}
	var rs []record
	var forms []string
	for _, r := range tx.Status {
		if !p.seal {
			rs = append(rs, record{pipelines.TopicRedemptionStatus, r.ID, r.Avro()})
			continue
		}
		key, v, form, err := p.sealStatus(ctx, r)
		if err != nil {
			return err
		}
		recs = append(recs, rec{pipelines.TopicRedemptionStatus, []byte(key), v})
		forms = append(forms, form)
	}
	for _, r := range tx.Orders {
		rs = append(rs, record{pipelines.PartnerRedemptionsTopic(r.Partner), r.ID, r.PartnerAvro()})
	}
	for i, d := range tx.Debits {
		rs = append(rs, record{pipelines.TopicLedgerRequests, d.Account, &tx.Debits[i]})
	}
	for i, x := range tx.Transfers {
		rs = append(rs, record{pipelines.TopicLedgerRequests, x.DebitAccount, &tx.Transfers[i]})
	}
	for _, c := range tx.Credits {
		if c.Kind == settlement.KindBonus { // to the campaign's partner (topics ensured in Process)
			if partner, camp, ok := settlement.BonusPartner(c.ScoreID); ok {
				rs = append(rs, record{pipelines.PartnerCampaignsTopic(partner), camp, c.PartnerAvro()})
			}
			continue
		}
		rs = append(rs, record{pipelines.TopicRewardCredits, c.PartnerKey(), c.PartnerAvro()})
	}
	for i, st := range tx.Statements {
		rs = append(rs, record{pipelines.TopicStatements, st.Day, &tx.Statements[i]})
	}
	for _, r := range rs {
		v, err := p.serde.Marshal(r.r)
		if err != nil {
			return fmt.Errorf("%s %s: %w", r.r.AvroName(), r.key, err)
		}
		recs = append(recs, rec{r.topic, []byte(r.key), v})
	}
	for _, r := range recs {
		if r.topic == pipelines.TopicSettlementLog {
			out.EmitTo(r.topic, p.task.Partition, r.key, r.value)
		} else {
			out.Emit(r.topic, r.key, r.value)
		}
	}
	minted, redeemed := p.book.Points()
	tx.Commit()
	mintedNow, redeemedNow := p.book.Points()
	// A rescore down (late data or a replay verdict) mints a negative
	// amount: a counter cannot decrease (Add panics after the commit above,
	// and the retried entry would be skipped as seen), so it counts apart.
	if d := mintedNow - minted; d >= 0 {
		p.m.points.WithLabelValues("minted").Add(float64(d))
	} else {
		p.m.points.WithLabelValues("rescored_down").Add(float64(-d))
	}
	p.m.points.WithLabelValues("redeemed").Add(float64(max(0, redeemedNow-redeemed)))
	for _, r := range tx.Status {
		p.m.redemptions.WithLabelValues(string(r.Status)).Inc()
	}
	for _, f := range forms {
		p.m.status.WithLabelValues(f).Inc()
	}
	for _, s := range tx.Statements {
		p.m.outstanding.Set(float64(s.BalanceSum))
		if s.InvariantOk {
			p.m.invariantOK.Set(1)
		} else {
			p.m.invariantOK.Set(0)
		}
		p.log.Info("settlement statement", "day", s.Day, "minted", s.Minted, "redeemed", s.Redeemed,
			"outstanding", s.Outstanding, "balance_sum", s.BalanceSum, "invariant_ok", s.InvariantOk)
	}
	for _, a := range tx.Alerts {
		p.m.alerts.WithLabelValues(a.Kind).Inc()
		p.log.Error("settlement alert", "kind", a.Kind, "msg", a.Msg)
	}
	return nil
}
