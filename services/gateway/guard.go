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

// nonces remembers (device, nonce) pairs for two generations of MaxSkew
// each: a request older than MaxSkew is refused by its timestamp, so a
// nonce need not be kept longer. Memory is bounded by max pairs per
// generation (16 bytes each); when full, requests are refused (429) rather
// than accepted unchecked.
type nonces struct {
	mu      sync.Mutex
	seed    maphash.Seed
	every   time.Duration
	max     int
	rotated time.Time
	cur     map[uint64]struct{}
	prev    map[uint64]struct{}
}

func newNonces(every time.Duration, max int, now time.Time) *nonces {
	return &nonces{seed: maphash.MakeSeed(), every: every, max: max, rotated: now,
		cur: map[uint64]struct{}{}, prev: map[uint64]struct{}{}}
}

type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceReplayed
	nonceFull
)

// use records device's nonce, telling whether it was seen.
func (n *nonces) use(device, nonce string, now time.Time) nonceResult {
	var h maphash.Hash
	h.SetSeed(n.seed)
	h.WriteString(device)
	h.WriteByte(0)
	h.WriteString(nonce)
	k := h.Sum64()
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.rotated) >= n.every {
		n.prev, n.cur = n.cur, make(map[uint64]struct{}, len(n.cur))
		if now.Sub(n.rotated) >= 2*n.every {
			clear(n.prev)
		}
		n.rotated = now
	}
	if _, ok := n.cur[k]; ok {
		return nonceReplayed
	}
	if _, ok := n.prev[k]; ok {
		return nonceReplayed
	}
	if len(n.cur) >= n.max {
		return nonceFull
	}
	n.cur[k] = struct{}{}
	return nonceFresh
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
