package pseudonym

import (
	"context"
	"errors"
	"sync"
)

// ErrUnknown is a pseudonym (or identity) without a key: never made, or
// erased.
var ErrUnknown = errors.New("no pseudonym key (never made, or erased)")

// Directory is the in-memory view of the pseudonyms topic: the openings
// by pseudonym and by identity. It is safe for concurrent use.
type Directory struct {
	mu   sync.RWMutex
	byP  map[string]Opening
	byID map[ident]string
	gone map[string]struct{} // pseudonyms deleted (tombstoned) and not put again
}

type ident struct {
	kind Kind
	id   string
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{byP: map[string]Opening{}, byID: map[ident]string{}, gone: map[string]struct{}{}}
}

// Put adds (or replaces) an opening.
func (d *Directory) Put(o Opening) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.byP[o.Pseudonym]; ok {
		delete(d.byID, ident{old.Kind, old.ID})
	}
	d.byP[o.Pseudonym] = o
	d.byID[ident{o.Kind, o.ID}] = o.Pseudonym
	delete(d.gone, o.Pseudonym)
}

// Delete forgets pseudonym p (a tombstone: the key is destroyed).
func (d *Directory) Delete(p string) (Opening, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gone[p] = struct{}{}
	o, ok := d.byP[p]
	if ok {
		delete(d.byP, p)
		if d.byID[ident{o.Kind, o.ID}] == p {
			delete(d.byID, ident{o.Kind, o.ID})
		}
	}
	return o, ok
}

// Gone reports whether pseudonym p was deleted (its key tombstoned) and
// not put again since: a record sealed for it names nobody any more.
// After the topic's compaction dropped a tombstone, a reader that starts
// then never sees it: p is then neither known nor gone.
func (d *Directory) Gone(p string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.gone[p]
	return ok
}

// Open returns the opening of pseudonym p.
func (d *Directory) Open(p string) (Opening, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.byP[p]
	return o, ok
}

// Lookup returns the opening of identity id of kind k.
func (d *Directory) Lookup(k Kind, id string) (Opening, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.byID[ident{k, id}]
	if !ok {
		return Opening{}, false
	}
	return d.byP[p], true
}

// Len is the number of keys.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byP)
}

// Resolver is what settlement and the owner API need of the pseudonyms
// topic: the opening of a pseudonym and of an identity. An implementation
// follows the topic (services/pseudonym/follow); Open and Lookup wait until
// it has read what was committed when they were called, so a pseudonym
// whose entry a reader just saw is found, and an error matching ErrUnknown
// means it has no key (never made, or erased).
type Resolver interface {
	Open(ctx context.Context, p string) (Opening, error)
	Lookup(ctx context.Context, k Kind, id string) (Opening, error)
}

// Static is a Resolver over a directory that is complete (tests, a
// snapshot): it never waits.
type Static struct{ *Directory }

// Open returns the opening of p or ErrUnknown.
func (s Static) Open(_ context.Context, p string) (Opening, error) {
	if o, ok := s.Directory.Open(p); ok {
		return o, nil
	}
	return Opening{}, ErrUnknown
}

// Lookup returns the opening of id or ErrUnknown.
func (s Static) Lookup(_ context.Context, k Kind, id string) (Opening, error) {
	if o, ok := s.Directory.Lookup(k, id); ok {
		return o, nil
	}
	return Opening{}, ErrUnknown
}
