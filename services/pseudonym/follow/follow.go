// Package follow reads the pseudonyms topic (minecart.ledger.pseudonyms)
// into a pseudonym.Directory: Snapshot reads it once to its end (the
// ledger, at every task start), Follower keeps following it and answers
// pseudonym.Resolver calls (settlement, the owner API, the CLI), reading
// up to the topic's current end before it says a pseudonym is unknown.
package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
)

// Topic is the pseudonyms topic.
const Topic = pipelines.TopicLedgerPseudonyms

// loader applies the records of the topic, in offset order, to a directory.
type loader struct {
	seal  *pseudonym.SealKey
	serde *schemas.Serde
	log   *slog.Logger
	dir   *pseudonym.Directory

	mu   sync.Mutex
	next int64 // offset of the next record to apply: records below it were applied
	bad  int
}

func (l *loader) apply(rec pipelines.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rec.Offset < l.next {
		return nil // read again by a Sync
	}
	l.next = rec.Offset + 1
	key := string(rec.Key)
	if rec.Value == nil {
		l.dir.Delete(key)
		return nil
	}
	var r avro.Pseudonym
	if err := l.serde.Unmarshal(rec.Value, &r); err != nil {
		l.bad++
		l.log.Error("pseudonym record skipped: does not decode", "offset", rec.Offset, "key", key, "err", err)
		return nil
	}
	o, err := l.seal.OpenRecord(key, &r)
	if err != nil {
		l.bad++
		l.log.Error("pseudonym record skipped: does not open", "offset", rec.Offset, "key", key, "err", err)
		return nil
	}
	l.dir.Put(o)
	return nil
}

// Snapshot reads the whole topic (to its end once every open transaction
// ended) into a new directory.
func Snapshot(ctx context.Context, cfg kafka.Config, seal *pseudonym.SealKey, log *slog.Logger) (*pseudonym.Directory, error) {
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	l := &loader{seal: seal, serde: cfg.Serde, log: orDefault(log), dir: pseudonym.NewDirectory()}
	if err := rd.ReadAll(ctx, Topic, 0, l.apply); err != nil {
		return nil, fmt.Errorf("pseudonyms: %w", err)
	}
	return l.dir, nil
}

// Loader is Snapshot as the ledger stage's loader function.
func Loader(cfg kafka.Config, seal *pseudonym.SealKey, log *slog.Logger) func(context.Context) (*pseudonym.Directory, error) {
	return func(ctx context.Context) (*pseudonym.Directory, error) { return Snapshot(ctx, cfg, seal, log) }
}

// Follower follows the topic into a directory; it is a pseudonym.Resolver.
type Follower struct {
	l      *loader
	follow *kafka.Reader
	sync   *kafka.Reader
	syncMu sync.Mutex
}

var _ pseudonym.Resolver = (*Follower)(nil)

// NewFollower returns a follower; Run follows the topic.
func NewFollower(cfg kafka.Config, seal *pseudonym.SealKey, log *slog.Logger) (*Follower, error) {
	if seal == nil {
		return nil, errors.New("pseudonyms: no sealing key")
	}
	a, err := kafka.NewReader(cfg)
	if err != nil {
		return nil, err
	}
	b, err := kafka.NewReader(cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	return &Follower{l: &loader{seal: seal, serde: cfg.Serde, log: orDefault(log), dir: pseudonym.NewDirectory()}, follow: a, sync: b}, nil
}

// Run follows the topic until ctx is done, then closes the readers.
func (f *Follower) Run(ctx context.Context) error {
	defer f.sync.Close()
	defer f.follow.Close()
	return f.follow.Follow(ctx, Topic, f.l.apply, nil)
}

// Sync reads the topic up to its current end (once every transaction open
// now has ended).
func (f *Follower) Sync(ctx context.Context) error {
	return f.readTo(ctx, func() (int64, error) { return f.sync.End(ctx, Topic, 0) })
}

// CatchUp reads the topic up to its last stable offset now, without
// waiting for open transactions (Sync waits for them): a stage that may
// itself hold a transaction open on the topic (scoring, the ledger) uses
// it, so it never waits for itself.
func (f *Follower) CatchUp(ctx context.Context) error {
	return f.readTo(ctx, func() (int64, error) {
		ends, err := f.sync.Ends(ctx, Topic)
		return ends[0], err
	})
}

// readTo reads the topic from where the follower is to the offset end
// gives.
func (f *Follower) readTo(ctx context.Context, end func() (int64, error)) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	to, err := end()
	if err != nil {
		return fmt.Errorf("pseudonyms: %w", err)
	}
	f.l.mu.Lock()
	from := f.l.next
	f.l.mu.Unlock()
	if from >= to {
		return nil
	}
	if err := f.sync.Read(ctx, Topic, 0, from, to, f.l.apply); err != nil {
		return fmt.Errorf("pseudonyms: %w", err)
	}
	return nil
}

// Directory is the follower's directory (read it after a Sync for an
// up-to-date view).
func (f *Follower) Directory() *pseudonym.Directory { return f.l.dir }

// Open returns the opening of pseudonym p, syncing first if it is not
// known yet; pseudonym.ErrUnknown if it has no key.
func (f *Follower) Open(ctx context.Context, p string) (pseudonym.Opening, error) {
	if o, ok := f.l.dir.Open(p); ok {
		return o, nil
	}
	if err := f.Sync(ctx); err != nil {
		return pseudonym.Opening{}, err
	}
	return pseudonym.Static{Directory: f.l.dir}.Open(ctx, p)
}

// Lookup returns the opening of an identity. It syncs first: an identity
// erased a moment ago must not be found in a stale view.
func (f *Follower) Lookup(ctx context.Context, k pseudonym.Kind, id string) (pseudonym.Opening, error) {
	if err := f.Sync(ctx); err != nil {
		return pseudonym.Opening{}, err
	}
	return pseudonym.Static{Directory: f.l.dir}.Lookup(ctx, k, id)
}

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
