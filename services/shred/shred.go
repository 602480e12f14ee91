// Package shred seals the records of the topics minecart keeps forever
// (retention -1) under a key of the one identity each names, so that
// destroying the identity's key erases the records without rewriting the
// log (crypto-shredding). The key is derived from the identity's pseudonym
// key (services/pseudonym), so the one tombstone an erasure writes on
// minecart.ledger.pseudonyms destroys both the link of the pseudonym and
// every record sealed for it.
//
// A sealed record replaces the clear one on its topic: record key = the
// identity's pseudonym, value = an avro.Sealed (minecart.shred.Sealed)
// whose sealed bytes are, byte for byte,
//
//	"MCS1" || key id (8) || nonce (12) || AES-256-GCM(inner) || tag (16)
//
// with inner = the framed Avro value the record would have had in clear,
// shred key = HMAC-SHA256(pseudonym key, "minecart/shred-key/v1"),
// key id = SHA-256("minecart-shred-key-id\x00" || shred key)[:8] and
// additional data "minecart/shred/v1\x00" || topic || "\x00" || pseudonym.
// docs/privacy.md defines every byte, with a worked example.
//
// The package is pure: the pseudonyms topic is read by the caller
// (services/pseudonym/follow), which hands in its directory and a Sync.
package shred

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/sealbox"
)

// Magic starts every sealed value.
const Magic = "MCS1"

// Errors of Open. ErrShredded wraps pseudonym.ErrUnknown: the identity's
// key is gone (erased, or never made), the record names nobody any more.
var (
	ErrShredded = fmt.Errorf("sealed record: its identity's key is destroyed: %w", pseudonym.ErrUnknown)
	ErrBad      = errors.New("sealed record is malformed or does not open")
)

// Key is the shred key of an identity: HMAC-SHA256(pseudonym key,
// "minecart/shred-key/v1").
func Key(pseudonymKey []byte) []byte {
	m := hmac.New(sha256.New, pseudonymKey)
	m.Write([]byte("minecart/shred-key/v1"))
	return m.Sum(nil)
}

func box(o pseudonym.Opening) (*sealbox.Box, error) {
	return sealbox.New(Key(o.Key), Magic, "minecart-shred-key-id\x00")
}

// AAD is the additional data of a value sealed for pseudonym p on topic.
func AAD(topic, p string) []byte {
	b := make([]byte, 0, 18+len(topic)+1+len(p))
	b = append(b, "minecart/shred/v1\x00"...)
	b = append(b, topic...)
	b = append(b, 0)
	return append(b, p...)
}

// Seal seals inner (the clear record's framed value) of topic under the
// key of o's identity, with a random nonce.
func Seal(o pseudonym.Opening, topic string, inner []byte) (*avro.Sealed, error) {
	b, err := box(o)
	if err != nil {
		return nil, fmt.Errorf("shred key of %s: %w", o.Pseudonym, err)
	}
	return &avro.Sealed{Pseudonym: o.Pseudonym, Kind: avro.SealedKind(o.Kind), Sealed: b.Seal(inner, AAD(topic, o.Pseudonym))}, nil
}

// SealNonce is Seal with a given nonce (the docs' worked example).
func SealNonce(o pseudonym.Opening, topic string, inner []byte, nonce [sealbox.NonceLen]byte) (*avro.Sealed, error) {
	b, err := box(o)
	if err != nil {
		return nil, err
	}
	return &avro.Sealed{Pseudonym: o.Pseudonym, Kind: avro.SealedKind(o.Kind), Sealed: b.SealNonce(inner, AAD(topic, o.Pseudonym), nonce)}, nil
}

// Open returns the inner value of s, read from topic under record key,
// with o the opening of its pseudonym.
func Open(o pseudonym.Opening, topic, key string, s *avro.Sealed) ([]byte, error) {
	if s.Pseudonym != key || o.Pseudonym != key || string(s.Kind) != string(o.Kind) {
		return nil, fmt.Errorf("%w: record of %s %q under key %q, opening of %q", ErrBad, s.Kind, s.Pseudonym, key, o.Pseudonym)
	}
	b, err := box(o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBad, err)
	}
	inner, err := b.Open(s.Sealed, AAD(topic, key))
	if err != nil {
		return nil, fmt.Errorf("%w: %s on %s: %v", ErrBad, key, topic, err)
	}
	return inner, nil
}

// Keys is the followed pseudonyms topic (follow.Follower).
type Keys interface {
	// Directory is the keys read so far.
	Directory() *pseudonym.Directory
	// CatchUp reads the topic to its last stable offset now, without
	// waiting for open transactions.
	CatchUp(ctx context.Context) error
	// Sync reads the topic to its end once every transaction open now
	// has ended.
	Sync(ctx context.Context) error
}

// ErrNotYet is a sealed record whose key may be in a transaction on the
// pseudonyms topic that the reader itself holds open (Reader.MayWait said
// no): retry once that transaction ended.
var ErrNotYet = errors.New("sealed record: its key is not readable yet")

// Reader opens the sealed records of the topics kept forever. It is safe
// for concurrent use.
type Reader struct {
	Keys  Keys
	Serde *schemas.Serde
	// MayWait, if set, reports whether the reader may wait for the open
	// transactions of the pseudonyms topic (false while the reader's own
	// transaction wrote to it: the ledger). Nil: always.
	MayWait func() bool
}

// Unseal returns the clear record of a topic record: for a Sealed value,
// the opening of its pseudonym (o.ID is the record key it would have had)
// and the inner value; for any other value the record's own value, sealed
// = false and o.ID = the record's key. A sealed record whose key is
// destroyed fails with ErrShredded (skip it: it names nobody any more),
// one that does not decode or open with ErrBad (dead-letter it).
//
// The key is looked for in the directory, then after reading the topic
// to its last stable offset; a pseudonym tombstoned there is shredded at
// once; else, after reading the topic to its end (its writer's
// transaction committed before the record was readable, so its key is
// there unless destroyed and compacted away), a pseudonym still unknown
// is shredded too.
func (r *Reader) Unseal(ctx context.Context, topic string, key, value []byte) (o pseudonym.Opening, inner []byte, sealed bool, err error) {
	name, err := r.Serde.Name(value)
	if err != nil || name != schemas.Sealed {
		return pseudonym.Opening{ID: string(key)}, value, false, nil // not an envelope: the caller decodes it as before
	}
	var s avro.Sealed
	if err := r.Serde.Unmarshal(value, &s); err != nil {
		return o, nil, true, fmt.Errorf("%w: %v", ErrBad, err)
	}
	if !pseudonym.Is(s.Pseudonym) || s.Pseudonym != string(key) {
		return o, nil, true, fmt.Errorf("%w: pseudonym %q under key %q", ErrBad, s.Pseudonym, key)
	}
	o, err = r.open(ctx, s.Pseudonym)
	if err != nil {
		return o, nil, true, err
	}
	inner, err = Open(o, topic, s.Pseudonym, &s)
	if err != nil {
		return pseudonym.Opening{}, nil, true, err
	}
	return o, inner, true, nil
}

func (r *Reader) open(ctx context.Context, p string) (pseudonym.Opening, error) {
	dir := r.Keys.Directory()
	if o, ok := dir.Open(p); ok {
		return o, nil
	}
	if dir.Gone(p) {
		return pseudonym.Opening{}, fmt.Errorf("%s: %w", p, ErrShredded)
	}
	if err := r.Keys.CatchUp(ctx); err != nil {
		return pseudonym.Opening{}, err // transient
	}
	if o, ok := dir.Open(p); ok {
		return o, nil
	}
	if dir.Gone(p) {
		return pseudonym.Opening{}, fmt.Errorf("%s: %w", p, ErrShredded)
	}
	if r.MayWait != nil && !r.MayWait() {
		return pseudonym.Opening{}, fmt.Errorf("%s: %w", p, ErrNotYet)
	}
	if err := r.Keys.Sync(ctx); err != nil {
		return pseudonym.Opening{}, err
	}
	if o, ok := dir.Open(p); ok {
		return o, nil
	}
	return pseudonym.Opening{}, fmt.Errorf("%s: %w", p, ErrShredded)
}

// Keyring is what a stage that seals needs: the followed pseudonyms topic
// and how to make the key of an identity seen first.
type Keyring struct {
	// Keys is the followed topic (follow.Follower).
	Keys Keys
	// Source makes the key of a new identity (default pseudonym.Random;
	// the simulated fleet's pseudonym.Derived, the same as the ledger's,
	// so a key made here is the key the ledger would have made).
	Source pseudonym.KeySource
	// Seal seals new keys for the pseudonyms topic (the ledger's key).
	Seal *pseudonym.SealKey
	// Now stamps new key records (default time.Now).
	Now func() time.Time
}

// Validate reports a keyring a Writer cannot use.
func (k *Keyring) Validate() error {
	if k.Keys == nil || k.Seal == nil {
		return errors.New("shred: keyring needs Keys and Seal")
	}
	return nil
}

// Writer seals the records of one task (a stage processor). It is not
// safe for concurrent use. A key it makes is written by the caller on the
// pseudonyms topic in the same transaction as the first record sealed
// under it, and kept here until the follower read it (or its tombstone).
// The runtime rebuilds a processor after an aborted transaction, so a
// key of an aborted transaction is never used again. The writer never
// waits for the topic's open transactions (it may hold one itself).
type Writer struct {
	ring   *Keyring
	fresh  map[wkey]pseudonym.Opening // made here, not yet read back by the follower
	caught bool                       // CatchUp ran in the open transaction
}

type wkey struct {
	kind pseudonym.Kind
	id   string
}

// NewWriter returns the writer of one task.
func NewWriter(ring *Keyring) *Writer {
	return &Writer{ring: ring, fresh: map[wkey]pseudonym.Opening{}}
}

// EndTransaction is called at the end of each transaction (the stage's
// Flush): it forgets the keys the follower has read back since.
func (w *Writer) EndTransaction() {
	w.caught = false
	dir := w.ring.Keys.Directory()
	for k, o := range w.fresh {
		if _, ok := dir.Open(o.Pseudonym); ok || dir.Gone(o.Pseudonym) {
			delete(w.fresh, k)
		}
	}
}

// Seal seals inner of topic for identity id of kind k. newKey, if not
// nil, is the identity's new pseudonym record: emit it on the pseudonyms
// topic (partition 0, key = its pseudonym) in the same transaction.
func (w *Writer) Seal(ctx context.Context, topic string, k pseudonym.Kind, id string, inner []byte) (s *avro.Sealed, newKey *avro.Pseudonym, err error) {
	o, newKey, err := w.key(ctx, k, id)
	if err != nil {
		return nil, nil, err
	}
	s, err = Seal(o, topic, inner)
	return s, newKey, err
}

func (w *Writer) key(ctx context.Context, k pseudonym.Kind, id string) (pseudonym.Opening, *avro.Pseudonym, error) {
	dir := w.ring.Keys.Directory()
	wk := wkey{k, id}
	if o, ok := dir.Lookup(k, id); ok {
		return o, nil, nil
	}
	if o, ok := w.fresh[wk]; ok {
		if !dir.Gone(o.Pseudonym) {
			return o, nil, nil // made here, not read back yet
		}
		delete(w.fresh, wk) // erased since: a new key
	}
	if !w.caught { // the follower may lag behind a key made elsewhere (the ledger's)
		if err := w.ring.Keys.CatchUp(ctx); err != nil {
			return pseudonym.Opening{}, nil, fmt.Errorf("shred: %w", err)
		}
		w.caught = true
		if o, ok := dir.Lookup(k, id); ok {
			return o, nil, nil
		}
	}
	src := w.ring.Source
	if src == nil {
		src = pseudonym.Random{}
	}
	key := src.NewKey(k, id)
	o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, k, id), Kind: k, ID: id, Key: key}
	w.fresh[wk] = o
	now := time.Now
	if w.ring.Now != nil {
		now = w.ring.Now
	}
	return o, w.ring.Seal.Record(o, now()), nil
}
