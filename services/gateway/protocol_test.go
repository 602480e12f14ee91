package gateway

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// TestFutureStampedReplay: a request stamped now+295s is accepted; its
// replay is refused at +481s and +580s (its timestamp is still within
// the skew, so its nonce must still be held), and as stale past +595s.
// The gateway's clock is driven through Config.Now; the request at +60s
// makes the cache of before rotate, which forgot the nonce by +481s.
func TestFutureStampedReplay(t *testing.T) {
	f := newFixture(t, nil)
	set := func(d time.Duration) { at := t0.Add(d); f.clock.Store(&at) }
	base := 250 * time.Second // the server started at t0; the attack starts later
	set(base)
	body := jsonBody(t, events("", 1, 0))
	hdr := http.Header{}
	if err := SignHeaders(hdr, "d1", body, f.hmacKey, t0.Add(base+295*time.Second), NewNonce()); err != nil {
		t.Fatal(err)
	}
	send := func() resp {
		req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		return do(t, req)
	}
	if r := send(); r.status != http.StatusAccepted {
		t.Fatalf("stamped now+295s: %d %+v", r.status, r.body)
	}
	set(base + 60*time.Second)
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 1, 1)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("another request: %d %+v", r.status, r.body)
	}
	for _, at := range []time.Duration{481, 580, 595} {
		set(base + at*time.Second)
		if r := send(); r.status != http.StatusUnauthorized || r.body.Error != ReasonReplayedNonce {
			t.Errorf("replay at +%ds: %d %+v, want 401 %s", at, r.status, r.body, ReasonReplayedNonce)
		}
	}
	set(base + 596*time.Second)
	if r := send(); r.status != http.StatusUnauthorized || r.body.Error != ReasonStaleTimestamp {
		t.Errorf("replay at +596s: %d %+v, want 401 %s", r.status, r.body, ReasonStaleTimestamp)
	}
	recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, 2, 10*time.Second)
	if len(recs) != 2 {
		t.Fatalf("raw topic has %d records, want 2", len(recs))
	}
}

// TestStrictHeaders: media type, encoding and authentication headers are
// taken exactly; what is refused produces nothing.
func TestStrictHeaders(t *testing.T) {
	f := newFixture(t, nil)
	good := jsonBody(t, events("", 1, 0))
	accepted := 0
	for _, tc := range []struct {
		name   string
		hdr    http.Header
		body   []byte
		status int
		reason string
	}{
		{"content type ;;;", http.Header{"Content-Type": {";;;"}}, good, 415, ReasonUnsupportedType},
		{"empty content type", http.Header{"Content-Type": {""}}, good, 415, ReasonUnsupportedType},
		{"json with charset", http.Header{"Content-Type": {"application/json; charset=UTF-8"}}, good, 202, ""},
		{"json upper case", http.Header{"Content-Type": {"Application/JSON"}}, good, 202, ""},
		{"json other parameter", http.Header{"Content-Type": {"application/json; v=2"}}, good, 415, ReasonUnsupportedType},
		{"json other charset", http.Header{"Content-Type": {"application/json; charset=latin1"}}, good, 415, ReasonUnsupportedType},
		{"two media types", http.Header{"Content-Type": {"application/json, avro/binary"}}, good, 415, ReasonUnsupportedType},
		{"two headers", http.Header{"Content-Type": {"application/json", "application/json"}}, good, 415, ReasonUnsupportedType},
		{"text/json", http.Header{"Content-Type": {"text/json"}}, good, 415, ReasonUnsupportedType},
		{"avro with parameter", http.Header{"Content-Type": {"avro/binary; schema=x"}}, good, 415, ReasonUnsupportedType},
		{"json prefix", http.Header{"Content-Type": {"application/jsonx"}}, good, 415, ReasonUnsupportedType},
		{"gzip twice", http.Header{"Content-Encoding": {"gzip, gzip"}}, good, 415, ReasonEncoding},
		{"br", http.Header{"Content-Encoding": {"br"}}, good, 415, ReasonEncoding},
		{"identity", http.Header{"Content-Encoding": {"identity"}}, good, 202, ""},
		{"trailing json", nil, append(bytes.Clone(good), []byte(` {"events":[]}`)...), 400, "decode"},
		{"trailing garbage", nil, append(bytes.Clone(good), 'x'), 400, "decode"},
		{"unknown field", nil, []byte(`{"events":[{"event_id":"a","seq":1,"time_ms":5,"lat":1,"lon":1}],"extra":1}`), 400, "decode"},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(tc.body))
		for k, v := range tc.hdr {
			req.Header[k] = v
		}
		if err := SignHeaders(req.Header, "d1", tc.body, f.hmacKey, f.now(), NewNonce()); err != nil {
			t.Fatal(err)
		}
		r := do(t, req)
		if r.status != tc.status || r.body.Error != tc.reason {
			t.Errorf("%s: %d %q (%s), want %d %q", tc.name, r.status, r.body.Error, r.body.Message, tc.status, tc.reason)
		}
		if r.status == 202 {
			accepted++
		}
	}
	// Authentication headers: each malformed one is 401 missing_auth.
	sign := func() http.Header {
		h := http.Header{}
		SignHeaders(h, "d1", good, f.hmacKey, f.now(), NewNonce())
		return h
	}
	for name, mod := range map[string]func(http.Header){
		"timestamp with sign":    func(h http.Header) { h.Set(HeaderTimestamp, "+"+h.Get(HeaderTimestamp)) },
		"timestamp leading zero": func(h http.Header) { h.Set(HeaderTimestamp, "0"+h.Get(HeaderTimestamp)) },
		"timestamp fraction":     func(h http.Header) { h.Set(HeaderTimestamp, h.Get(HeaderTimestamp)+".0") },
		"two nonces":             func(h http.Header) { h.Add(HeaderNonce, NewNonce()) },
		"two devices":            func(h http.Header) { h.Add(HeaderDevice, "d2") },
		"signature unpadded": func(h http.Header) {
			h.Set(HeaderSignature, base64.RawStdEncoding.EncodeToString(mustB64(h.Get(HeaderSignature))))
		},
		"signature url alphabet": func(h http.Header) {
			h.Set(HeaderSignature, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)))
		},
		"signature of 31 bytes": func(h http.Header) { h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, 31))) },
		"nonce too short":       func(h http.Header) { h.Set(HeaderNonce, "abc") },
		"device of 65 bytes":    func(h http.Header) { h.Set(HeaderDevice, strings.Repeat("d", 65)) },
	} {
		req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(good))
		req.Header = sign()
		mod(req.Header)
		if r := do(t, req); r.status != 401 || r.body.Error != ReasonMissingAuth {
			t.Errorf("%s: %d %+v, want 401 %s", name, r.status, r.body, ReasonMissingAuth)
		}
	}
	recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, accepted, 10*time.Second)
	if len(recs) != accepted {
		t.Fatalf("raw topic has %d records, want %d", len(recs), accepted)
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var timestampRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,11})$`)

// FuzzParseAuth: parseAuth never panics, and what it accepts is exactly
// the documented forms: the timestamp matches its grammar and reads back
// the same, the nonce is valid, the signature is canonical base64 of 32 or
// 64 bytes, the device id has no control characters.
func FuzzParseAuth(f *testing.F) {
	f.Add("d1", "1764072000", "abcdefghijklmnop", base64.StdEncoding.EncodeToString(make([]byte, 32)), false)
	f.Add("d1", "+1764072000", NewNonce(), base64.StdEncoding.EncodeToString(make([]byte, 64)), true)
	f.Add("", "0", "", "", false)
	f.Add("d\n1", "01", "aaaaaaaaaaaaaaa=", "AAAA", false)
	f.Fuzz(func(t *testing.T, device, ts, nonce, sig string, twice bool) {
		h := http.Header{}
		h.Set(HeaderDevice, device)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderNonce, nonce)
		h.Set(HeaderSignature, sig)
		if twice {
			h.Add(HeaderNonce, nonce)
		}
		a, err := parseAuth(h)
		if err != nil {
			if !twice && device != "" && validDeviceID(device) && timestampRE.MatchString(ts) && validNonce(nonce) {
				if b, derr := base64.StdEncoding.DecodeString(sig); derr == nil && (len(b) == 32 || len(b) == 64) &&
					base64.StdEncoding.EncodeToString(b) == sig {
					t.Fatalf("valid headers refused: %v", err)
				}
			}
			return
		}
		if twice {
			t.Fatal("a repeated header accepted")
		}
		if !timestampRE.MatchString(ts) || strconv.FormatInt(a.unix, 10) != ts {
			t.Fatalf("timestamp %q accepted as %d", ts, a.unix)
		}
		if !validNonce(a.nonce) || a.nonce != nonce || a.device != device || len(device) > 64 {
			t.Fatalf("nonce %q / device %q accepted", nonce, device)
		}
		for i := 0; i < len(device); i++ {
			if device[i] < 0x20 || device[i] == 0x7f {
				t.Fatalf("device %q with a control character accepted", device)
			}
		}
		if len(a.sig) != 32 && len(a.sig) != 64 || base64.StdEncoding.EncodeToString(a.sig) != sig {
			t.Fatalf("signature %q accepted as %d bytes", sig, len(a.sig))
		}
	})
}

// FuzzMediaType: mediaType never panics and accepts only the documented
// media types (JSON with at most charset=utf-8, Avro without parameters).
func FuzzMediaType(f *testing.F) {
	for _, s := range []string{";;;", "application/json", "application/json; charset=utf-8", "avro/binary", "application/avro; x=1", "Application/Json;charset=\"UTF-8\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		h := http.Header{"Content-Type": {ct}}
		format, err := mediaType(h)
		if err != nil {
			return
		}
		switch format {
		case "json":
			if !regexp.MustCompile(`(?i)^\s*application/json\s*(;.*)?$`).MatchString(ct) {
				t.Fatalf("%q accepted as JSON", ct)
			}
		case "avro":
			if !regexp.MustCompile(`(?i)^\s*(avro/binary|application/avro)\s*;?\s*$`).MatchString(ct) {
				t.Fatalf("%q accepted as Avro", ct)
			}
		default:
			t.Fatalf("%q: format %q", ct, format)
		}
	})
}

// FuzzNonces drives the replay cache with random uses against a reference
// that keeps every nonce forever with its expiry: a nonce used again at or
// before its expiry must be refused; one whose expiry passed more than a
// generation ago must be fresh again (so memory is reclaimed).
func FuzzNonces(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 1, 1, 200, 3, 255, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const skew = 10 * time.Second
		n := newNonces(skew, 1<<20, 1<<20)
		width := time.Duration(n.width)
		ref := map[string]time.Time{}
		now := t0
		for i := 0; i+2 < len(ops); i += 3 {
			now = now.Add(time.Duration(ops[i]%16) * time.Second / 2)
			nonce := "nonce-nonce-nonce-" + strconv.Itoa(int(ops[i+1]%8))
			ts := now.Add(time.Duration(int(ops[i+2]%41)-20) * time.Second / 2).Truncate(time.Second)
			if d := now.Sub(ts); d > skew || d < -skew {
				continue // refused by its timestamp before the cache
			}
			expiry := ts.Add(skew)
			got := n.use("d", nonce, expiry, now)
			prev, held := ref[nonce]
			switch {
			case held && !now.After(prev) && got != nonceReplayed:
				t.Fatalf("op %d: nonce %s (expiry %v) at %v: %v, want replayed", i, nonce, prev.Sub(t0), now.Sub(t0), got)
			case (!held || now.Sub(prev) > width) && got != nonceFresh:
				t.Fatalf("op %d: nonce %s forgotten-by-reference at %v: %v, want fresh", i, nonce, now.Sub(t0), got)
			}
			if got == nonceFresh {
				ref[nonce] = expiry
			}
		}
	})
}
