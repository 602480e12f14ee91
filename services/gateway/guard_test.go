package gateway

import (
	"fmt"
	"testing"
	"time"
)

// TestNonces: a nonce is held until its expiry (its request's timestamp
// plus the skew) has passed, whenever it was first used; when the cache is
// full, use refuses instead of forgetting.
func TestNonces(t *testing.T) {
	const skew = time.Minute
	n := newNonces(skew, 3, 3)
	exp := t0.Add(skew)
	if n.use("d", "aaaaaaaaaaaaaaaa", exp, t0) != nonceFresh || n.use("d", "aaaaaaaaaaaaaaaa", exp, t0) != nonceReplayed {
		t.Fatal("replay in the same window not caught")
	}
	if !n.seen("d", "aaaaaaaaaaaaaaaa", t0) || n.seen("d", "bbbbbbbbbbbbbbbb", t0) {
		t.Fatal("seen disagrees with use")
	}
	if n.use("e", "aaaaaaaaaaaaaaaa", exp, t0) != nonceFresh {
		t.Fatal("same nonce of another device refused")
	}
	// Held up to and at its expiry, however many generations passed.
	for _, at := range []time.Duration{30 * time.Second, 59 * time.Second, 60 * time.Second} {
		if n.use("d", "aaaaaaaaaaaaaaaa", exp, t0.Add(at)) != nonceReplayed {
			t.Fatalf("replay at +%v (expiry +60s) not caught", at)
		}
	}
	// A nonce stamped in the future is held until its own expiry.
	far := t0.Add(skew - 5*time.Second).Add(skew) // stamped now+55s
	if n.use("f", "cccccccccccccccc", far, t0) != nonceFresh {
		t.Fatal("fresh nonce refused")
	}
	// Full (3 pairs): refused, not forgotten.
	if got := n.use("g", "dddddddddddddddd", exp, t0); got != nonceFull {
		t.Fatalf("full cache: %v", got)
	}
	if n.use("f", "cccccccccccccccc", far, t0.Add(100*time.Second)) != nonceReplayed {
		t.Fatal("future-stamped nonce forgotten before its expiry")
	}
	// Past the expiry of d's and e's nonces (+60s, and one generation
	// width of 15s): forgotten, which makes room.
	later := t0.Add(skew + 16*time.Second)
	if n.seen("d", "aaaaaaaaaaaaaaaa", later) {
		t.Fatal("nonce kept past its expiry and a generation")
	}
	if got := n.use("g", "dddddddddddddddd", later.Add(skew), later); got != nonceFresh {
		t.Fatalf("after expiry: %v", got)
	}
	if n.n != 2 || n.devices["f"] != 1 || n.devices["g"] != 1 || len(n.devices) != 2 {
		t.Fatalf("held %d pairs %v, want 2 of f and g", n.n, n.devices)
	}
	// A device's share: full for it, not for the others.
	s := newNonces(skew, 10, 2)
	for i, want := range []nonceResult{nonceFresh, nonceFresh, nonceFull} {
		if got := s.use("d", fmt.Sprintf("nonce-nonce-nonce-%d", i), exp, t0); got != want {
			t.Fatalf("device share, nonce %d: %v, want %v", i, got, want)
		}
	}
	if s.use("e", "nonce-nonce-nonce-0", exp, t0) != nonceFresh {
		t.Fatal("another device refused when one device's share is full")
	}
}

func TestLimiter(t *testing.T) {
	l := &limiter{rate: 100, burst: 500, buckets: map[string]*bucket{}}
	if ok, _ := l.take("d", 500, t0); !ok {
		t.Fatal("full bucket refused its burst")
	}
	ok, wait := l.take("d", 100, t0)
	if ok || wait != time.Second {
		t.Fatalf("empty bucket: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.take("other", 100, t0); !ok {
		t.Fatal("buckets are per device")
	}
	if ok, _ := l.take("d", 100, t0.Add(time.Second)); !ok {
		t.Fatal("not refilled after a second")
	}
	// A batch larger than the burst waits for a full bucket, then passes.
	if ok, _ := l.take("d", 10000, t0.Add(10*time.Second)); !ok {
		t.Fatal("batch larger than the burst never passes")
	}
}

func TestValidNonce(t *testing.T) {
	for n, want := range map[string]bool{"": false, "short": false, "abcdefghijklmnop": true, "abc+defghijklmnop": false,
		NewNonce(): true, string(make([]byte, 65)): false} {
		if validNonce(n) != want {
			t.Errorf("validNonce(%q) != %v", n, want)
		}
	}
}
