package auth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate requests a second on average, Burst at
// once.
type Limit struct {
	Rate  float64
	Burst int
}

// buckets holds one token bucket per key (a caller's subject), at most
// max of them: when full, buckets unused for a minute are dropped, and if
// none is, a new key is refused (its caller retries after a second).
type buckets struct {
	mu    sync.Mutex
	limit Limit
	max   int
	m     map[string]*bucket
}

type bucket struct {
	l    *rate.Limiter
	used time.Time
}

func newBuckets(l Limit, max int) *buckets {
	return &buckets{limit: l, max: max, m: map[string]*bucket{}}
}

// allow takes a token of key's bucket at now; when there is none it says
// how long until there is.
func (b *buckets) allow(key string, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.m[key]
	if !ok {
		if len(b.m) >= b.max {
			for key, k := range b.m {
				if now.Sub(k.used) > time.Minute {
					delete(b.m, key)
				}
			}
			if len(b.m) >= b.max {
				return false, time.Second
			}
		}
		k = &bucket{l: rate.NewLimiter(rate.Limit(b.limit.Rate), b.limit.Burst)}
		b.m[key] = k
	}
	k.used = now
	r := k.l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// throttle counts failed logins per key (an owner id, a client address)
// and locks a key out after Free consecutive failures: for Base, doubling
// with each further failure up to Max. A success clears the owner's key.
type throttle struct {
	mu        sync.Mutex
	free      int
	base, max time.Duration
	cap       int
	m         map[string]*failures
}

type failures struct {
	n     int
	until time.Time // locked until
	last  time.Time
}

func newThrottle(free int, base, max time.Duration, cap int) *throttle {
	return &throttle{free: free, base: base, max: max, cap: cap, m: map[string]*failures{}}
}

// locked says how long key stays locked out (0: not locked).
func (t *throttle) locked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.m[key]; ok && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// fail records a failure of key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[key]
	if !ok {
		if len(t.m) >= t.cap {
			for k, f := range t.m {
				if now.After(f.until) && now.Sub(f.last) > t.max {
					delete(t.m, k)
				}
			}
		}
		f = &failures{}
		t.m[key] = f
	}
	f.n++
	f.last = now
	if f.n >= t.free {
		d := time.Duration(float64(t.base) * math.Pow(2, float64(f.n-t.free)))
		if d > t.max || d <= 0 {
			d = t.max
		}
		f.until = now.Add(d)
	}
}

// clear forgets key's failures.
func (t *throttle) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}
