package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// SerdeConfig configures NewSerde.
type SerdeConfig struct {
	// RegistryURL is the Confluent-compatible Schema Registry to use, or a
	// comma-separated list of its URLs. Empty: Avro single-object encoding
	// and no registry. Set: Confluent wire format (00 + 4-byte big-endian
	// schema id); NewSerde registers every embedded schema under the
	// subject of its full record name (RecordNameStrategy).
	RegistryURL string
	// RegistryUser and RegistryPassword are HTTP basic-auth credentials for
	// the registry, if it needs them.
	RegistryUser, RegistryPassword string
	// LookupTimeout bounds each registry request Decode makes to resolve a
	// schema id it has not seen (default 10s).
	LookupTimeout time.Duration
	// MissTTL is how long Decode remembers that the registry does not know
	// a schema id before asking again (default 30s), so a burst of records
	// with a bogus id costs one request, not one per record.
	MissTTL time.Duration
	// Now is the clock for MissTTL (default time.Now).
	Now func() time.Time
	// HTTPClient is the client for registry requests (default: one with a
	// 5s timeout).
	HTTPClient *http.Client
}

// Validate reports a configuration NewSerde cannot use.
func (c SerdeConfig) Validate() error {
	for _, u := range c.urls() {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("registry url: %w", err)
		}
		if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			return fmt.Errorf("registry url %q: want http(s)://host[:port]", u)
		}
	}
	if c.RegistryURL == "" && (c.RegistryUser != "" || c.RegistryPassword != "") {
		return errors.New("registry credentials without a registry url")
	}
	if c.LookupTimeout < 0 || c.MissTTL < 0 {
		return errors.New("negative registry timeout")
	}
	return nil
}

func (c SerdeConfig) urls() []string {
	var urls []string
	for u := range strings.SplitSeq(c.RegistryURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// NewSerde returns a Serde over the embedded schemas. Every schema must
// parse, or NewSerde returns the errors of all that do not. With
// cfg.RegistryURL set it registers every schema in the registry (ctx bounds
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
	urls := cfg.urls()
	if len(urls) == 0 {
		return &Serde{cat: cat}, nil
	}
	opts := []sr.ClientOpt{sr.URLs(urls...), sr.UserAgent("minecart")}
	if cfg.RegistryUser != "" || cfg.RegistryPassword != "" {
		opts = append(opts, sr.BasicAuth(cfg.RegistryUser, cfg.RegistryPassword))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, sr.HTTPClient(cfg.HTTPClient))
	}
	client, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	r := &registry{
		client:  client,
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
		id, err := client.RegisterSchema(ctx, name, sr.Schema{Schema: e.text, Type: sr.TypeAvro}, -1, -1)
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
	client  *sr.Client
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
	s, err := r.client.SchemaByID(ctx, int(id))
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.ErrorCode == sr.ErrSchemaNotFound.Code) {
			return nil, fmt.Errorf("%w: schema registry id %d", ErrUnknownSchema, id)
		}
		return nil, fmt.Errorf("schema registry id %d: %w", id, err)
	}
	if s.Type != sr.TypeAvro || len(s.References) > 0 {
		return nil, fmt.Errorf("%w: schema registry id %d is a %s schema with %d references; want self-contained Avro",
			ErrUnknownSchema, id, s.Type, len(s.References))
	}
	if canonical, err := canonicalForm([]byte(s.Schema)); err == nil {
		if e := cat.byFP[fingerprint64([]byte(canonical))]; e != nil {
			return e, nil
		}
	}
	full, err := recordName([]byte(s.Schema))
	if err != nil {
		return nil, fmt.Errorf("%w: schema registry id %d: %v", ErrUnknownSchema, id, err)
	}
	e := &entry{name: full, text: s.Schema}
	if err := e.build(); err != nil {
		return nil, fmt.Errorf("%w: schema registry id %d: %v", ErrUnknownSchema, id, err)
	}
	return e, nil
}
