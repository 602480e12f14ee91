package loadtest

import (
	"math"
	"sync"
	"time"
)

// latencies is a log-bucketed histogram (5 % wide buckets from 1 µs to
// ~20 min): quantiles in constant memory, however many requests.
type latencies struct {
	mu     sync.Mutex
	counts [440]int64
	n      int64
}

const latGrowth = 1.05

func latBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log(us)/math.Log(latGrowth))+1, len(latencies{}.counts)-1)
}

func (l *latencies) add(d time.Duration) {
	b := latBucket(d)
	l.mu.Lock()
	l.counts[b]++
	l.n++
	l.mu.Unlock()
}

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(l.n)))
	seen := int64(0)
	for b, c := range l.counts {
		seen += c
		if seen >= max(rank, 1) {
			return time.Duration(math.Pow(latGrowth, float64(b)) * float64(time.Microsecond))
		}
	}
	return 0
}
