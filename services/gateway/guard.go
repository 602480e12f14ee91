package gateway

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// inflight bounds the bytes of requests being handled (bodies, decoded
// events and encoded records): what the gateway holds while Kafka is slow.
type inflight struct {
	max int64
	cur atomic.Int64
}

func (f *inflight) tryAcquire(n int64) bool {
	for {
		c := f.cur.Load()
		if c+n > f.max {
			return false
		}
		if f.cur.CompareAndSwap(c, c+n) {
			return true
		}
	}
}

func (f *inflight) release(n int64) { f.cur.Add(-n) }

// nonces remembers (device, nonce) pairs until the request that used them
// could no longer be accepted: a request stamped ts is accepted while now
// <= ts + MaxSkew, so its nonce is kept until then (its expiry), never for
// a fixed time after it was first seen (a request stamped in the future
// would outlive that). Pairs are 64-bit hashes (seeded maphash) grouped by
// expiry into generations of width MaxSkew/4 (at least 1s); a generation
// is dropped once the newest expiry it can hold has passed, so a pair is
// kept at most one generation width past its expiry. Memory is bounded by
// max pairs in all and perDevice pairs of one device; when full, requests
// (of that device) are refused (429 replay_cache_full) until expiries free
// room: never accepted unchecked, never forgotten early.
type nonces struct {
	mu        sync.Mutex
	seed      maphash.Seed
	width     int64 // nanoseconds of expiry per generation
	max       int
	perDevice int
	n         int            // pairs held in all generations
	devices   map[string]int // pairs held per device
	gens      map[int64]*nonceGen
}

// nonceGen is the pairs whose expiry falls in one generation.
type nonceGen struct {
	keys    map[uint64]struct{}
	devices map[string]int
}

func newNonces(skew time.Duration, limit, perDevice int) *nonces {
	width := max(int64(skew/4), int64(time.Second))
	return &nonces{seed: maphash.MakeSeed(), width: width, max: limit, perDevice: perDevice,
		devices: map[string]int{}, gens: map[int64]*nonceGen{}}
}

type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceReplayed
	nonceFull
)

func (n *nonces) key(device, nonce string) uint64 {
	var h maphash.Hash
	h.SetSeed(n.seed)
	h.WriteString(device)
	h.WriteByte(0)
	h.WriteString(nonce)
	return h.Sum64()
}

// sweep drops the generations whose every expiry is before now.
func (n *nonces) sweep(now time.Time) {
	t := now.UnixNano()
	for g, gen := range n.gens {
		if (g+1)*n.width <= t {
			n.n -= len(gen.keys)
			for d, c := range gen.devices {
				if n.devices[d] -= c; n.devices[d] <= 0 {
					delete(n.devices, d)
				}
			}
			delete(n.gens, g)
		}
	}
}

func (n *nonces) has(k uint64) bool {
	for _, gen := range n.gens {
		if _, ok := gen.keys[k]; ok {
			return true
		}
	}
	return false
}

// seen tells whether device's nonce is held (a check before the body is
// read; use records it once the signature verified).
func (n *nonces) seen(device, nonce string, now time.Time) bool {
	k := n.key(device, nonce)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweep(now)
	return n.has(k)
}

// use records device's nonce until expiry (the request's timestamp plus
// MaxSkew), telling whether it was held already or the cache (or the
// device's share of it) is full.
func (n *nonces) use(device, nonce string, expiry, now time.Time) nonceResult {
	k := n.key(device, nonce)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweep(now)
	if n.has(k) {
		return nonceReplayed
	}
	if n.n >= n.max || n.devices[device] >= n.perDevice {
		return nonceFull
	}
	g := floorDiv(expiry.UnixNano(), n.width)
	gen := n.gens[g]
	if gen == nil {
		gen = &nonceGen{keys: map[uint64]struct{}{}, devices: map[string]int{}}
		n.gens[g] = gen
	}
	gen.keys[k] = struct{}{}
	gen.devices[device]++
	n.devices[device]++
	n.n++
	return nonceFresh
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// holds bounds what one device's requests hold at once: all their bytes
// (maxTotal) and, of those, the bytes of bodies whose signature is not
// verified yet (maxUnverified). The second is what a client that knows a
// device id but not its key can make the gateway hold; the first is what a
// device with its key can. Entries exist only while a device holds bytes.
type holds struct {
	mu            sync.Mutex
	maxTotal      int64
	maxUnverified int64
	m             map[string]*hold
}

type hold struct{ total, unverified int64 }

// acquire reserves n bytes for device (unverified ones if unverified).
func (h *holds) acquire(device string, n int64, unverified bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.m[device]
	if d == nil {
		d = &hold{}
	}
	if d.total+n > h.maxTotal || unverified && d.unverified+n > h.maxUnverified {
		return false
	}
	d.total += n
	if unverified {
		d.unverified += n
	}
	h.m[device] = d
	return true
}

// verified turns n of device's unverified bytes into verified ones.
func (h *holds) verified(device string, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.m[device]; d != nil {
		d.unverified -= n
	}
}

// release gives back total bytes of device, unverified of them unverified.
func (h *holds) release(device string, total, unverified int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.m[device]
	if d == nil {
		return
	}
	d.total -= total
	d.unverified -= unverified
	if d.total <= 0 {
		delete(h.m, device)
	}
}

// device returns what device holds (for tests and metrics).
func (h *holds) device(device string) (total, unverified int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.m[device]; d != nil {
		return d.total, d.unverified
	}
	return 0, 0
}

// limiter is a token bucket of events per device.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens (events) per second
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take takes n tokens of device's bucket, or says how long until it could.
func (l *limiter) take(device string, n int, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[device]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[device] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	need := float64(n)
	if need > l.burst {
		need = l.burst // a batch larger than the burst waits for a full bucket
	}
	if b.tokens >= need {
		b.tokens -= need
		return true, 0
	}
	return false, time.Duration((need - b.tokens) / l.rate * float64(time.Second))
}
