package gateway

import (
	"testing"
	"time"
)

func TestNonces(t *testing.T) {
	n := newNonces(time.Minute, 3, t0)
	if n.use("d", "aaaaaaaaaaaaaaaa", t0) != nonceFresh || n.use("d", "aaaaaaaaaaaaaaaa", t0) != nonceReplayed {
		t.Fatal("replay in the same window not caught")
	}
	if n.use("e", "aaaaaaaaaaaaaaaa", t0) != nonceFresh {
		t.Fatal("same nonce of another device refused")
	}
	// Next window: still remembered (a request may be MaxSkew old).
	if n.use("d", "aaaaaaaaaaaaaaaa", t0.Add(70*time.Second)) != nonceReplayed {
		t.Fatal("replay in the next window not caught")
	}
	// Two windows later it is forgotten (its timestamp would be refused).
	if n.use("d", "aaaaaaaaaaaaaaaa", t0.Add(200*time.Second)) != nonceFresh {
		t.Fatal("nonce kept beyond two windows")
	}
	for i, s := range []string{"b", "c", "d"} {
		got := n.use("d", s+"bbbbbbbbbbbbbbb", t0.Add(200*time.Second))
		if want := map[bool]nonceResult{true: nonceFull, false: nonceFresh}[i == 2]; got != want {
			t.Fatalf("nonce %d: %v, want %v", i, got, want)
		}
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
