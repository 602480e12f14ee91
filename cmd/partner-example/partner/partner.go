// Package partner is what a minecart partner runs, written with
// github.com/segmentio/kafka-go (not the pipeline's franz-go) to show that
// any Kafka client can take part: it reads the partner's redemptions topic
// (orders), checks each order's entry against the ledger (the leaf is
// the canonical entry for this order, its hold, the RFC 6962 inclusion proof
// folds to the root, and the root is the one in the checkpoint the ledger
// key signed), fulfils it and acknowledges it on the acks topic. It can
// also follow the settled-credits topic and verify those proofs.
//
// Delivery is at least once (offsets are committed after the acks are
// written); orders are de-duplicated by redemption id, and settlement
// ignores a repeated ack.
package partner

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
)

// Config configures a partner consumer.
type Config struct {
	Brokers []string
	Partner string
	// Group prefixes the consumer groups, one per topic read: Group +
	// topic (default "partner-<partner>/", the prefix the partner's ACLs
	// allow; the slash keeps partner "acme" out of partner "acme-2"'s
	// groups).
	Group string
	// LedgerKey is the ledger's Ed25519 public key: checkpoints must carry
	// its signature.
	LedgerKey ed25519.PublicKey
	// User and Password, if set, authenticate with SASL/SCRAM-SHA-512.
	User, Password string
	// Credits also follows the settled-credits topic and verifies it.
	Credits bool
	// Campaigns, if set, are the partner's campaigns (the definitions it
	// signed): the consumer follows its campaigns topic and verifies each
	// bonus with VerifyBonus (OnBonus sees them).
	Campaigns []campaign.Definition
	OnBonus   func(c avro.CreditSettled, err error)
	// Fulfil delivers an order and returns the partner's reference for
	// it (default: "<partner>-<redemption id>").
	Fulfil func(ctx context.Context, o Order) (ref string, err error)
	// OnOrder and OnCredit see every order and credit once, after
	// verification (err = why it did not verify).
	OnOrder  func(o Order, err error)
	OnCredit func(c avro.CreditSettled, err error)
	// Checkpoints, if set, checks every published checkpoint against the
	// witness policy and the last one accepted (checkpoints.go): those the
	// publisher writes into the partner's own topics (redemptions, and
	// campaigns when followed; docs/partners.md, "The published checkpoint
	// in your topics") and, with CheckpointsTopic, the records of
	// minecart.ledger.checkpoints. OnCheckpoint sees each outcome.
	Checkpoints      *Checkpoints
	CheckpointsTopic bool
	OnCheckpoint     func(cp ledger.Checkpoint, cosigners []string, err error)
	// Seen de-duplicates orders across restarts (default: in memory).
	Seen Store
	// BatchTimeout is how long the ack writer waits to fill a batch
	// (default 5ms): kafka-go's default of 1s would hold every ack for a
	// second when, as here, few messages are written at a time.
	BatchTimeout time.Duration
	Logger       *slog.Logger
}

// Store remembers which orders were handled.
type Store interface {
	Seen(id string) bool
	Mark(id string)
}

// MemStore is an in-memory Store.
type MemStore struct {
	mu  sync.Mutex
	ids map[string]bool
}

// Seen reports whether id was marked.
func (s *MemStore) Seen(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// Mark marks id.
func (s *MemStore) Mark(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("partner: no brokers")
	case settlement.ValidID(c.Partner) != nil:
		return fmt.Errorf("partner: %w", settlement.ValidID(c.Partner))
	case len(c.LedgerKey) != ed25519.PublicKeySize:
		return errors.New("partner: no ledger public key")
	case (c.User == "") != (c.Password == ""):
		return errors.New("partner: set both user and password, or neither")
	case c.BatchTimeout < 0:
		return errors.New("partner: negative batch timeout")
	case c.Checkpoints != nil && (c.Checkpoints.Policy == nil || len(c.Checkpoints.LedgerKey) != ed25519.PublicKeySize):
		return errors.New("partner: checkpoints without a policy or the ledger key")
	}
	for _, d := range c.Campaigns {
		if d.Partner != c.Partner {
			return fmt.Errorf("partner: campaign %s is not partner %s's", d.ID(), c.Partner)
		}
	}
	return nil
}

// Order is a confirmed redemption the partner must fulfil.
type Order = avro.Redemption

// VerifyProof checks that leaf is in the ledger: its hash, the inclusion
// proof to the root at the tree size, and the checkpoint signed by key
// for that size and root. It returns the decoded canonical entry.
func VerifyProof(p avro.LedgerProof, key ed25519.PublicKey) (ledger.Entry, error) {
	if len(p.Leaf) == 0 {
		return ledger.Entry{}, errors.New("no leaf")
	}
	leaf := merkle.HashLeaf(p.Leaf)
	if len(p.LeafHash) > 0 && !bytes.Equal(leaf[:], p.LeafHash) {
		return ledger.Entry{}, errors.New("leaf hash does not match the leaf")
	}
	if p.LeafIndex < 0 || p.TreeSize <= p.LeafIndex || len(p.Root) != merkle.HashSize {
		return ledger.Entry{}, fmt.Errorf("leaf %d of tree size %d, root of %d bytes", p.LeafIndex, p.TreeSize, len(p.Root))
	}
	path := make([]merkle.Hash, len(p.AuditPath))
	for i, h := range p.AuditPath {
		if len(h) != merkle.HashSize {
			return ledger.Entry{}, fmt.Errorf("proof hash %d: %d bytes", i, len(h))
		}
		copy(path[i][:], h)
	}
	root := merkle.Hash(p.Root)
	if err := merkle.VerifyInclusion(uint64(p.LeafIndex), uint64(p.TreeSize), leaf, path, root); err != nil {
		return ledger.Entry{}, fmt.Errorf("inclusion: %w", err)
	}
	cp, err := ledger.VerifyCheckpoint(p.Checkpoint, key)
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("checkpoint: %w", err)
	}
	if cp.Size != uint64(p.TreeSize) || cp.Root != root {
		return ledger.Entry{}, fmt.Errorf("checkpoint is for size %d root %s, proof for size %d root %s", cp.Size, cp.Root, p.TreeSize, root)
	}
	e, err := ledger.DecodeEntry(p.Leaf)
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("leaf: %w", err)
	}
	return e, nil
}

// VerifyOrder checks the entry an order rests on: in the ledger, and
// exactly this order's. Since redemptions are holds (docs/partners.md), it
// is a kind-5 pending transfer (flags exactly pending) whose id is
// settlement.RedemptionHoldID of the order's id, partner, item, quantity
// and points, from the owner's account to partner:<partner>, of the
// order's points. An order of a redemption made before holds rests on a
// kind-2 debit of this redemption, owner, points, partner and item, and
// verifies as it always did.
func VerifyOrder(o Order, partner string, key ed25519.PublicKey) error {
	if o.Partner != partner {
		return fmt.Errorf("order for partner %q", o.Partner)
	}
	if o.Status != avro.RedemptionStatusConfirmed || o.Debit == nil {
		return fmt.Errorf("order in status %s without debit proof", o.Status)
	}
	e, err := VerifyProof(*o.Debit, key)
	if err != nil {
		return err
	}
	switch e.Kind {
	case ledger.KindTransfer:
		// The hold id binds the redemption, partner, item, quantity and
		// points; the credit side is the partner's account (its pseudonym
		// in a pseudonymous leaf).
		hold := settlement.RedemptionHoldID(o.RedemptionID, partner, o.ItemID, o.Quantity, o.Points)
		if e.TransferFlags != ledger.TransferPending || e.ID != hold || e.Amount != o.Points ||
			(e.CounterAccount != settlement.PartnerAccount(partner) && !pseudonym.Is(e.CounterAccount)) {
			return fmt.Errorf("ledger entry transfer %s (%s, %s -> %s, %d points) is not this order's hold %s", e.ID, e.TransferFlags, e.Account, e.CounterAccount, e.Amount, hold)
		}
	case ledger.KindDebit:
		if e.RedemptionID != o.RedemptionID || e.Amount != o.Points || e.Partner != partner || e.Item != o.ItemID {
			return fmt.Errorf("ledger entry %s %q (%s, %d points, %s/%s) is not this order", e.Kind, e.RedemptionID, e.Account, e.Amount, e.Partner, e.Item)
		}
	default:
		return fmt.Errorf("ledger entry of kind %s is not an order's", e.Kind)
	}
	// The order names the owner exactly as the leaf does: by the
	// account's pseudonym (docs/partners.md, "Nothing personal"), never
	// by the account id.
	if e.Account != o.Owner {
		return fmt.Errorf("ledger entry %q charges %s, the order's owner is %s", e.ID, e.Account, o.Owner)
	}
	return nil
}

// HoldDeadline is when an order's hold expires (ledger time): the
// partner's ack must be applied before it, else the points go back to the
// owner and the ack is refused. Zero for an order resting on a debit.
func HoldDeadline(o Order) (time.Time, error) {
	if o.Debit == nil {
		return time.Time{}, errors.New("no proof")
	}
	e, err := ledger.DecodeEntry(o.Debit.Leaf)
	if err != nil {
		return time.Time{}, err
	}
	if e.Kind != ledger.KindTransfer || e.TimeoutMs == 0 {
		return time.Time{}, nil
	}
	// The order is written when the hold's entry is applied: its
	// updated_ms is the hold block's timestamp.
	return o.UpdatedMs.Add(time.Duration(e.TimeoutMs) * time.Millisecond), nil
}

// VerifyCredit checks a settled credit's entry: in the ledger, and the
// credit of this vehicle-day and points (or, for kind rescore, the rescore
// of that credit with this signed change, revision and day points).
func VerifyCredit(c avro.CreditSettled, key ed25519.PublicKey) error {
	e, err := VerifyProof(c.Proof, key)
	if err != nil {
		return err
	}
	if e.VehicleID != c.VehicleID || e.Delta() != c.Points || (e.Kind == ledger.KindCredit && e.ID != c.ScoreID) ||
		(e.Kind == ledger.KindRescore && (e.Ref != c.ScoreID || e.Points != c.DayPoints || e.Revision != int64(c.Revision))) {
		return fmt.Errorf("ledger entry %s %q (%s, %d points) is not this credit", e.Kind, e.ID, e.VehicleID, e.Delta())
	}
	return nil
}

// VerifyBonus checks a bonus from the partner's campaigns topic: its
// entry is in the ledger (VerifyProof), is a bonus (kind 7) whose id is
// the record's score_id and BonusID(campaign, credit leaf hash), of one of
// rules (the partner's campaigns, by id) with that campaign's rule hash,
// for the record's vehicle and day, paying the record's points, at least
// 1 and at most what it requested; and the rule, evaluated again on the
// entry's canonical inputs, asks for exactly `requested` (the clamp to
// [0, cap] included), for a date the schedule covers. The inputs rest on
// the credit at credit_leaf: checking them against it needs the book
// (minecart campaigns audit).
func VerifyBonus(c avro.CreditSettled, key ed25519.PublicKey, rules map[string]*campaign.Rule) error {
	e, err := VerifyProof(c.Proof, key)
	if err != nil {
		return err
	}
	if e.Kind != ledger.KindBonus || c.Kind != string(settlement.KindBonus) || e.ID != c.ScoreID ||
		e.ID != campaign.BonusID(e.Campaign, e.CreditHash) || e.VehicleID != c.VehicleID || e.Date != c.Day {
		return fmt.Errorf("ledger entry %s %q (%s, %s) is not this bonus (%s %q)", e.Kind, e.ID, e.VehicleID, e.Date, c.Kind, c.ScoreID)
	}
	r := rules[e.Campaign]
	if r == nil || !bytes.Equal(r.Hash[:], e.RuleHash) {
		return fmt.Errorf("bonus %q: campaign %q with rule hash %x is not one of ours", e.ID, e.Campaign, e.RuleHash)
	}
	if e.Amount != c.Points || e.Amount < 1 || e.Amount > e.Requested {
		return fmt.Errorf("bonus %q: amount %d, record %d points, requested %d", e.ID, e.Amount, c.Points, e.Requested)
	}
	in, err := campaign.DecodeInputs(e.Inputs)
	if err != nil {
		return fmt.Errorf("bonus %q: %w", e.ID, err)
	}
	if in.Date != e.Date || !r.Def.Covers(in.Date) {
		return fmt.Errorf("bonus %q: date %s (inputs %s) outside %s..%s", e.ID, e.Date, in.Date, r.Def.Start, r.Def.End)
	}
	if n, err := r.Bonus(&in); err != nil || n != e.Requested {
		return fmt.Errorf("bonus %q: requested %d, our rule gives %d (%v)", e.ID, e.Requested, n, err)
	}
	return nil
}

// Run consumes until ctx is done, then returns nil (or the first fatal
// error).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Group == "" {
		cfg.Group = settlement.PartnerGroupPrefix(cfg.Partner)
	}
	if cfg.Seen == nil {
		cfg.Seen = &MemStore{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	if cfg.Fulfil == nil {
		cfg.Fulfil = func(_ context.Context, o Order) (string, error) { return cfg.Partner + "-" + o.RedemptionID, nil }
	}
	var mech sasl.Mechanism
	if cfg.User != "" {
		var err error
		if mech, err = scram.Mechanism(scram.SHA512, cfg.User, cfg.Password); err != nil {
			return fmt.Errorf("partner: sasl: %w", err)
		}
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, SASLMechanism: mech}
	c := &consumer{cfg: cfg, serde: schemas.SingleObject(), log: cfg.Logger.With("partner", cfg.Partner)}
	// The ack writer: acks=all, Java-compatible murmur2 partitioning by
	// redemption id, and batches flushed after BatchTimeout or 500
	// messages. Untuned, kafka-go's Writer waits 1s (BatchTimeout) before
	// sending a batch that is not full: one ack per second.
	c.acks = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        pipelines.TopicPartnerAcks,
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    500,
		BatchTimeout: cfg.BatchTimeout,
		Transport:    &kafka.Transport{SASL: mech, DialTimeout: 10 * time.Second},
	}
	readers := []*kafka.Reader{c.reader(dialer, pipelines.PartnerRedemptionsTopic(cfg.Partner))}
	if cfg.Credits {
		readers = append(readers, c.reader(dialer, pipelines.TopicRewardCredits))
	}
	if len(cfg.Campaigns) > 0 {
		c.rules = make(map[string]*campaign.Rule, len(cfg.Campaigns))
		for _, d := range cfg.Campaigns {
			r, err := campaign.Compile(d)
			if err != nil {
				return fmt.Errorf("partner: %w", err)
			}
			c.rules[d.ID()] = r
		}
		readers = append(readers, c.reader(dialer, pipelines.PartnerCampaignsTopic(cfg.Partner)))
	}
	nconsume := len(readers) // the checkpoints reader, if any, comes last
	if cfg.Checkpoints != nil && cfg.CheckpointsTopic {
		readers = append(readers, c.reader(dialer, pipelines.TopicLedgerCheckpoints))
	}
	errc := make(chan error, len(readers))
	for i, r := range readers {
		if i == nconsume {
			go func() { errc <- c.followCheckpoints(ctx, r) }()
			continue
		}
		go func() { errc <- c.consume(ctx, r, i == 0) }()
	}
	var first error
	for range readers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	for _, r := range readers {
		if err := r.Close(); err != nil && first == nil {
			first = fmt.Errorf("partner: close reader: %w", err)
		}
	}
	if err := c.acks.Close(); err != nil && first == nil {
		first = fmt.Errorf("partner: close writer: %w", err)
	}
	return first
}

type consumer struct {
	cfg   Config
	rules map[string]*campaign.Rule // the partner's campaigns, by id
	serde *schemas.Serde
	acks  *kafka.Writer
	log   *slog.Logger
}

func (c *consumer) reader(d *kafka.Dialer, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.cfg.Brokers,
		GroupID: c.cfg.Group + topic,
		Topic:   topic,
		Dialer:  d,
		// Settlement writes in transactions: read only committed ones.
		IsolationLevel: kafka.ReadCommitted,
		StartOffset:    kafka.FirstOffset,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		// Hand over what is there after 100ms rather than the default
		// 10s; commits are synchronous (CommitInterval 0), after the acks.
		MaxWait:           100 * time.Millisecond,
		ReadBatchTimeout:  time.Second,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
	})
}

// consume reads one topic in batches: what arrives within BatchTimeout of
// the first message is handled, acknowledged in one write and committed.
func (c *consumer) consume(ctx context.Context, r *kafka.Reader, orders bool) error {
	for {
		batch, err := c.fetchBatch(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("partner: fetch %s: %w", r.Config().Topic, err)
		}
		var (
			acks []kafka.Message
			done []Order
			errs []error
		)
		for _, m := range batch {
			if isControl(m) {
				continue
			}
			if isCheckpoint(m) { // the cosigned checkpoint, not an order or a bonus
				c.checkpoint(m)
				continue
			}
			if !orders {
				c.credit(m, r.Config().Topic != pipelines.TopicRewardCredits)
				continue
			}
			o, a, ok, verr := c.order(ctx, m)
			if ok {
				acks, done, errs = append(acks, a), append(done, o), append(errs, verr)
			}
		}
		if len(acks) > 0 {
			if err := c.acks.WriteMessages(ctx, acks...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("partner: write acks: %w", err)
			}
			// Only acknowledged orders count as handled: one that was
			// fulfilled but not acknowledged comes again after a restart,
			// so Fulfil must be idempotent by redemption id.
			for i, o := range done {
				c.cfg.Seen.Mark(o.RedemptionID)
				if c.cfg.OnOrder != nil {
					c.cfg.OnOrder(o, errs[i])
				}
			}
		}
		if err := r.CommitMessages(ctx, batch...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("partner: commit: %w", err)
		}
	}
}

func (c *consumer) fetchBatch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.BatchTimeout)
	defer cancel()
	for len(batch) < 500 {
		m, err := r.FetchMessage(wctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, ctx.Err()
}

// isControl reports a transaction marker. kafka-go (v0.4.51) hands
// control records of transactional topics to the application as messages
// (key: int16 version 0, int16 type 0 abort / 1 commit; value: int16
// version, int32 coordinator epoch), and does not drop the records of
// aborted transactions either: the order de-duplication and the ledger
// proof check are what make that harmless here.
func isControl(m kafka.Message) bool {
	k := m.Key
	return len(k) == 4 && k[0] == 0 && k[1] == 0 && k[2] == 0 && k[3] <= 1 && len(m.Value) == 6
}

// isCheckpoint reports a cosigned checkpoint in a partner topic: header
// minecart-record = ledger-checkpoint, or a key "checkpoint:<20 digits>"
// (pipelines.IsPartnerCheckpoint).
func isCheckpoint(m kafka.Message) bool {
	return pipelines.IsPartnerCheckpoint(m.Key, func(name string) ([]byte, bool) {
		for _, h := range m.Headers {
			if h.Key == name {
				return h.Value, true
			}
		}
		return nil, false
	})
}

// order verifies and fulfils one order and returns it, its ack, and why
// it did not verify; ok is false for an order already handled or one
// that does not decode.
func (c *consumer) order(ctx context.Context, m kafka.Message) (o Order, ack kafka.Message, ok bool, verr error) {
	if err := c.serde.Unmarshal(m.Value, &o); err != nil {
		c.log.Error("order does not decode", "offset", m.Offset, "err", err)
		return o, ack, false, nil
	}
	if c.cfg.Seen.Seen(o.RedemptionID) {
		return o, ack, false, nil
	}
	a := avro.PartnerAck{RedemptionID: o.RedemptionID, Partner: c.cfg.Partner, AckedMs: time.Now()}
	verr = VerifyOrder(o, c.cfg.Partner, c.cfg.LedgerKey)
	// Past the hold's deadline (by this partner's clock, an estimate of
	// ledger time) settlement refuses a FULFILLED ack: do not deliver.
	deadline, _ := HoldDeadline(o)
	if verr != nil {
		c.log.Error("order does not verify: not fulfilled", "redemption", o.RedemptionID, "err", verr)
		a.Status, a.Reason = avro.AckStatusFailed, "proof: "+verr.Error()
	} else if !deadline.IsZero() && !a.AckedMs.Before(deadline) {
		c.log.Warn("order past its hold's deadline: not fulfilled", "redemption", o.RedemptionID, "deadline", deadline)
		a.Status, a.Reason = avro.AckStatusFailed, "deadline passed"
	} else if ref, err := c.cfg.Fulfil(ctx, o); err != nil {
		a.Status, a.Reason = avro.AckStatusFailed, err.Error()
	} else {
		a.Status, a.Reference = avro.AckStatusFulfilled, ref
	}
	v, err := c.serde.Marshal(&a)
	if err != nil {
		c.log.Error("encode ack", "redemption", o.RedemptionID, "err", err)
		return o, ack, false, verr
	}
	return o, kafka.Message{Key: []byte(o.RedemptionID), Value: v}, true, verr
}

func (c *consumer) credit(m kafka.Message, bonus bool) {
	var cr avro.CreditSettled
	err := c.serde.Unmarshal(m.Value, &cr)
	if err == nil {
		id := "credit/" + cr.Proof.EntryID
		if c.cfg.Seen.Seen(id) {
			return
		}
		c.cfg.Seen.Mark(id)
		if bonus {
			err = VerifyBonus(cr, c.cfg.LedgerKey, c.rules)
		} else {
			err = VerifyCredit(cr, c.cfg.LedgerKey)
		}
	}
	if err != nil {
		c.log.Error("credit does not verify", "offset", m.Offset, "bonus", bonus, "err", err)
	}
	if on := c.cfg.OnCredit; bonus && c.cfg.OnBonus != nil {
		c.cfg.OnBonus(cr, err)
	} else if on != nil && !bonus {
		on(cr, err)
	}
}
