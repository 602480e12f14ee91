package schemas

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Registry is a Confluent-compatible Schema Registry as a Serde uses it.
// schemas/registry implements it over the registry's HTTP API; this package
// keeps what makes it cheap and safe (ids registered once, lookups shared
// and cached, misses remembered for a while and bounded).
type Registry interface {
	// Register registers the schema text under subject and returns its id.
	Register(ctx context.Context, subject, text string) (id int, err error)
	// Schema returns the text of the schema registered as id. An error
	// wrapping ErrUnknownSchema means the registry does not know the id, or
	// that it is not a self-contained Avro schema; any other error means
	// the registry could not be asked (transient).
	Schema(ctx context.Context, id uint32) (text string, err error)
}

// SerdeConfig configures NewSerde.
type SerdeConfig struct {
	// Registry, when set, makes the Serde write the Confluent wire format
	// (00 + 4-byte big-endian schema id): NewSerde registers every embedded
	// schema under the subject of its full record name
	// (RecordNameStrategy). Nil: Avro single-object encoding, no registry.
	Registry Registry
	// LookupTimeout bounds each registry request Decode makes to resolve a
	// schema id it has not seen (default 10s).
	LookupTimeout time.Duration
	// MissTTL is how long Decode remembers that the registry does not know
	// a schema id before asking again (default 30s), so a burst of records
	// with a bogus id costs one request, not one per record.
	MissTTL time.Duration
	// Now is the clock for MissTTL (default time.Now).
	Now func() time.Time
}

// Validate reports a configuration NewSerde cannot use.
func (c SerdeConfig) Validate() error {
	if c.LookupTimeout < 0 || c.MissTTL < 0 {
		return errors.New("negative registry timeout")
	}
	return nil
}

// NewSerde returns a Serde over the embedded schemas. Every schema must
// parse, or NewSerde returns the errors of all that do not. With
// cfg.Registry set it registers every schema in the registry (ctx bounds
// that) and writes the Confluent wire format; Decode reads both framings.
func NewSerde(ctx context.Context, cfg SerdeConfig) (*Serde, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newSerde(ctx, cfg, embeddedCatalog())
}

func newSerde(ctx context.Context, cfg SerdeConfig, cat *catalog) (*Serde, error) {
	if err := cat.errs(); err != nil {
		return nil, err
	}
	if len(cat.names) == 0 {
		return nil, errors.New("no schemas")
	}
	if cfg.Registry == nil {
		return &Serde{cat: cat}, nil
	}
	r := &registry{
		client:  cfg.Registry,
		ids:     make(map[string]uint32, len(cat.names)),
		byID:    make(map[uint32]*lookup),
		timeout: orDefault(cfg.LookupTimeout, 10*time.Second),
		missTTL: orDefault(cfg.MissTTL, 30*time.Second),
		now:     cfg.Now,

		maxMisses: maxMisses,
	}
	if r.now == nil {
		r.now = time.Now
	}
	for _, name := range cat.names {
		e := cat.byName[name]
		id, err := r.client.Register(ctx, name, e.text)
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
		if id <= 0 || int64(id) > int64(^uint32(0)>>1) {
			return nil, fmt.Errorf("register %s: registry returned id %d", name, id)
		}
		r.ids[name] = uint32(id)
		r.known.Store(uint32(id), e)
	}
	return &Serde{cat: cat, reg: r}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// registry maps Confluent schema ids to schemas, asking the registry for ids
// it has not seen.
type registry struct {
	client  Registry
	ids     map[string]uint32 // embedded schema -> id; read-only after NewSerde
	timeout time.Duration
	missTTL time.Duration
	now     func() time.Time

	known sync.Map // uint32 -> *entry: ids resolved, read without the lock

	mu        sync.Mutex
	byID      map[uint32]*lookup // lookups, done or in flight, and misses
	misses    int                // failed lookups since the last sweep
	maxMisses int                // maxMisses (a field so that tests can lower it)
}

// lookup is one id's resolution: done is closed once e or err is set, so
// concurrent Decodes of a new id share one registry request.
type lookup struct {
	done    chan struct{}
	e       *entry
	err     error
	expires time.Time // for a miss: when to ask again
}

// resolve returns the schema of id. An id the registry knows whose schema
// has the fingerprint of an embedded one uses the embedded codec; any other
// (an older or newer version of a record, written by another producer) gets
// a codec of its own, so its fields decode as it was written.
func (r *registry) resolve(cat *catalog, id uint32) (*entry, error) {
	if e, ok := r.known.Load(id); ok { // the hot path: no lock
		return e.(*entry), nil
	}
	r.mu.Lock()
	l := r.byID[id]
	if l != nil {
		select {
		case <-l.done:
			if l.err != nil && !r.now().Before(l.expires) {
				l = nil // a miss that has expired, or a transient error
			}
		default:
		}
	}
	if l != nil {
		r.mu.Unlock()
		<-l.done
		return l.e, l.err
	}
	l = &lookup{done: make(chan struct{})}
	r.byID[id] = l
	r.mu.Unlock()

	l.e, l.err = r.fetch(cat, id)
	if l.err != nil {
		if errors.Is(l.err, ErrUnknownSchema) || errors.Is(l.err, ErrMalformed) {
			l.expires = r.now().Add(r.missTTL)
		} else {
			l.expires = r.now() // transient: the next Decode asks again
		}
	}
	close(l.done)
	if l.err != nil {
		r.forgetMisses()
	} else {
		r.known.Store(id, l.e)
	}
	return l.e, l.err
}

// maxMisses bounds the failed lookups remembered: a stream of garbage with
// ever new ids must not grow the cache without end.
const maxMisses = 4096

// forgetMisses counts a failed lookup and, every maxMisses of them, drops
// all failed lookups from the cache (they are asked again when seen again).
func (r *registry) forgetMisses() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.misses++
	if r.misses < r.maxMisses {
		return
	}
	r.misses = 0
	for id, l := range r.byID {
		select {
		case <-l.done:
			if l.err != nil {
				delete(r.byID, id)
			}
		default:
		}
	}
}

func (r *registry) fetch(cat *catalog, id uint32) (*entry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	text, err := r.client.Schema(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schema registry id %d: %w", id, err)
	}
	if canonical, err := canonicalForm([]byte(text)); err == nil {
		if e := cat.byFP[fingerprint64([]byte(canonical))]; e != nil {
			return e, nil
		}
	}
	full, err := recordName([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%w: schema registry id %d: %v", ErrUnknownSchema, id, err)
	}
	e := &entry{name: full, text: text}
	if err := e.build(); err != nil {
		return nil, fmt.Errorf("%w: schema registry id %d: %v", ErrUnknownSchema, id, err)
	}
	return e, nil
}
