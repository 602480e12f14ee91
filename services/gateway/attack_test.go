package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// rawRequest opens a TCP connection to the gateway and writes the request
// line and headers of a POST /v1/telemetry declaring a body of length
// bytes (-1: chunked), plus the first body bytes given; the caller decides
// what follows (nothing: a stall).
func rawRequest(t *testing.T, addr string, hdr http.Header, length int64, body []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /v1/telemetry HTTP/1.1\r\nHost: %s\r\n", addr)
	if length >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", length)
	} else {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return c
}

// forged returns authentication headers naming device with a fresh
// timestamp and nonce and a well-formed signature of sigLen bytes that
// does not verify: what a client that knows a device id but not its key
// can send.
func forged(device string, at time.Time, sigLen int) http.Header {
	h := http.Header{}
	h.Set(HeaderDevice, device)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderNonce, NewNonce())
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, sigLen)))
	return h
}

// TestStalledConnections: 40 connections that declare 8 MiB bodies and
// then stall or trickle (no headers, an unknown device, a known device
// without its key) hold at most one device's bound of unverified bytes,
// while a real device still gets 202 (within 1s, a generous bound); once
// BodyTimeout passes every one of them is answered and closed and nothing
// is held. With the admission of before (the declared length reserved
// before anything was checked), the 32 with headers held the whole 256 MiB
// budget and the real device got 429.
func TestStalledConnections(t *testing.T) {
	const bodyTimeout = 3 * time.Second
	f := newFixture(t, func(c *Config) {
		c.MaxBodyBytes = 8 << 20 // the defaults of MaxInFlightBytes (256 MiB) and the device bounds
		c.BodyTimeout = bodyTimeout
	})
	addr := f.http.Listener.Addr().String()
	const declared = 8 << 20
	var conns []net.Conn
	var stop sync.WaitGroup
	done := make(chan struct{})
	defer func() { close(done); stop.Wait() }()
	for i := range 40 {
		switch {
		case i < 8: // no authentication headers at all
			conns = append(conns, rawRequest(t, addr, http.Header{"Content-Type": {"application/json"}}, declared, nil))
		case i < 16: // an unknown device
			conns = append(conns, rawRequest(t, addr, forged("ghost", f.now(), 32), declared, make([]byte, 64<<10)))
		case i < 28: // a known device without its key: 1 MiB, then silence
			conns = append(conns, rawRequest(t, addr, forged("d2", f.now(), 64), declared, make([]byte, 1<<20)))
		case i < 36: // a known device without its key: a slow trickle
			c := rawRequest(t, addr, forged("d2", f.now(), 64), declared, []byte{'{'})
			conns = append(conns, c)
			stop.Add(1)
			go func() {
				defer stop.Done()
				for {
					select {
					case <-done:
						return
					case <-time.After(50 * time.Millisecond):
						if _, err := c.Write([]byte{' '}); err != nil {
							return
						}
					}
				}
			}()
		default: // chunked, no declared length, then silence
			conns = append(conns, rawRequest(t, addr, forged("d2", f.now(), 64), -1, []byte("10000\r\n"+strings.Repeat(" ", 1<<10))))
		}
	}
	// Let the stalls take hold: d2's unverified bytes at their bound.
	maxUnverified := f.srv.cfg.MaxDeviceUnverifiedBytes
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, u := f.srv.holds.device("d2"); u >= maxUnverified/2 {
			break
		}
		if time.Now().After(deadline) {
			_, u := f.srv.holds.device("d2")
			t.Fatalf("stalls hold %d unverified bytes of d2", u)
		}
	}
	if held := f.srv.inflight.cur.Load(); held > maxUnverified {
		t.Fatalf("40 stalled connections hold %d bytes, more than one device's unverified bound %d", held, maxUnverified)
	}
	// A real device is served meanwhile.
	start := time.Now()
	r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 20, 0)), map[string]string{"Content-Type": "application/json"}, "")
	el := time.Since(start)
	if r.status != http.StatusAccepted {
		t.Fatalf("real device during 40 stalls: %d %+v", r.status, r.body)
	}
	if el > time.Second {
		t.Fatalf("real device answered after %v", el)
	}
	t.Logf("real device: 202 in %v while stalls hold %d bytes", el.Round(time.Millisecond), f.srv.inflight.cur.Load())
	// What the stalls can do (docs/security.md): the device they
	// name is itself delayed, told when to retry, until BodyTimeout ends
	// them.
	if r := f.post(t, "d2", f.edKey, jsonBody(t, events("", 1, 0)), nil, ""); r.status != http.StatusTooManyRequests ||
		r.body.Error != ReasonDeviceBusy || r.retry == "" {
		t.Fatalf("named device during its stalls: %d %+v retry %q", r.status, r.body, r.retry)
	}
	// Every stalled connection is answered and closed by BodyTimeout.
	statuses := map[int]int{}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(bodyTimeout + 5*time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("conn %d: no answer: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if !res.Close {
			t.Errorf("conn %d: %d without Connection: close", i, res.StatusCode)
		}
		statuses[res.StatusCode]++
	}
	for code := range statuses {
		if code != http.StatusUnauthorized && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
			t.Errorf("stalled connections answered %v", statuses)
		}
	}
	if statuses[http.StatusUnauthorized] != 16 || statuses[http.StatusRequestTimeout] == 0 {
		t.Errorf("stalled connections answered %v, want 16 x 401 and some 408", statuses)
	}
	t.Logf("stalled connections answered %v", statuses)
	for deadline := time.Now().Add(5 * time.Second); f.srv.inflight.cur.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("in-flight bytes after the stalls ended: %d", f.srv.inflight.cur.Load())
		}
	}
	if tot, u := f.srv.holds.device("d2"); tot != 0 || u != 0 {
		t.Fatalf("d2 still holds %d (%d unverified)", tot, u)
	}
	if r := f.post(t, "d2", f.edKey, jsonBody(t, events("", 1, 0)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("named device after its stalls: %d %+v", r.status, r.body)
	}
	if recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, 21, 10*time.Second); len(recs) != 21 {
		t.Fatalf("raw topic has %d records, want the real devices' 21", len(recs))
	}
	if got := metric(t, f.reg, "minecart_gateway_rejects_total", ReasonBodyTimeout); got == 0 {
		t.Error("no body_timeout reject counted")
	}
}

// bomb is a gzip body of n zero bytes (written in 1 MiB pieces, so making
// it does not itself hold n bytes).
func bomb(n int) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for ; n > 0; n -= len(zeros) {
		w.Write(zeros[:min(n, len(zeros))])
	}
	w.Close()
	return buf.Bytes()
}

// TestGzipBombWaves: three waves of 16 gzip bombs (256 MiB of zeros each)
// from one valid device are refused (413/429), the heap while they run
// stays within the device's bound of bytes (64 MiB) plus a bounded
// overhead, and after them the gateway keeps no more than its buffer pool
// (at most 32 MiB): before, 128 MiB growth buffers stayed in a sync.Pool
// (RSS 102 MiB -> 2.3 GiB).
func TestGzipBombWaves(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 8 << 20 })
	b := bomb(256 << 20)
	base, peak, after := bombWaves(t, f, b, 3, 16)
	budget := uint64(f.srv.cfg.MaxDeviceBytes)
	t.Logf("heap: before %d MiB, peak %d MiB, after %d MiB (device bound %d MiB)", base>>20, peak>>20, after>>20, budget>>20)
	// Generous: what the device may hold, the garbage of doubling buffers
	// and the GC's headroom (GOGC=100) over it.
	if peak > base+3*budget+64<<20 {
		t.Errorf("heap peaked at %d MiB, base %d MiB, device bound %d MiB", peak>>20, base>>20, budget>>20)
	}
	if after > base+poolBuffers*poolBufferBytes+16<<20 {
		t.Errorf("heap after the waves %d MiB, base %d MiB: more than the buffer pool kept", after>>20, base>>20)
	}
	if f.srv.inflight.cur.Load() != 0 {
		t.Fatalf("in-flight bytes after the bombs: %d", f.srv.inflight.cur.Load())
	}
	// The device is still served, and nothing of the bombs was produced.
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 3, 0)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("after the bombs: %d %+v", r.status, r.body)
	}
	if recs := kafkatest.WaitRecords(t, f.brokers, pipelines.TopicTelemetryRaw, 3, 10*time.Second); len(recs) != 3 {
		t.Fatalf("raw topic has %d records, want 3", len(recs))
	}
}

// bombWaves sends waves of n concurrent signed gzip bombs from d1 and
// returns the heap in use (after a GC) before, its peak sampled while the
// waves run, and after (after a GC).
func bombWaves(t testing.TB, f *fixture, body []byte, waves, n int) (base, peak, after uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base = ms.HeapAlloc
	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var p uint64
		for {
			runtime.ReadMemStats(&m)
			p = max(p, m.HeapAlloc)
			select {
			case <-stop:
				sampled <- p
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	for w := range waves {
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/v1/telemetry", bytes.NewReader(body))
				req.Header.Set("Content-Encoding", "gzip")
				SignHeaders(req.Header, "d1", body, f.hmacKey, f.now(), NewNonce())
				res, err := client.Do(req)
				if err != nil {
					t.Errorf("wave %d bomb %d: %v", w, i, err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				codes[i] = res.StatusCode
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusRequestEntityTooLarge && c != http.StatusTooManyRequests {
				t.Errorf("wave %d bomb %d: %d, want 413 or 429", w, i, c)
			}
		}
	}
	close(stop)
	peak = <-sampled
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return base, peak, ms.HeapAlloc
}
