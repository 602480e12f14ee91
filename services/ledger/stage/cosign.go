package stage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// CosignConfig configures a Cosigner: who to ask (the policy) and how
// long to wait for each (docs/ledger.md, "Publication").
type CosignConfig struct {
	Policy *ledger.Policy
	// Client makes the requests (default a client without its own
	// timeout: every request gets Timeout through its context).
	Client *http.Client
	// Timeout bounds one add-checkpoint request, connection included
	// (default 5s).
	Timeout time.Duration
	// Attempts is how many times a witness is asked per round when it
	// fails transiently: no answer, a 5xx, garbage (default 3). A 409 is
	// answered at once with the size it gives and does not count.
	Attempts int
	// Backoff is the wait before the second attempt, doubled for each
	// next one (default 100ms, at most 2s).
	Backoff time.Duration
	// MaxSkew is how far a cosignature's timestamp may be from Now, in
	// the past or the future (default 10 minutes); a cosignature outside
	// is a refusal ("skew") and does not count towards the quorum.
	MaxSkew time.Duration
	// Grace is how long the witnesses still outstanding once the quorum
	// is met get to answer, so their cosignatures join the note (default
	// 250ms).
	Grace time.Duration
	// MirrorWait bounds how long a round waits for a mirror's cosignature
	// (a policy witness whose URL is a mirror's /ledger prefix) after its
	// witness API took the checkpoint: the mirror fetches and verifies the
	// new tiles first (default 2 minutes).
	MirrorWait time.Duration
	// Now is the clock cosignature timestamps are checked against
	// (default time.Now).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c CosignConfig) withDefaults() CosignConfig {
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	c.Timeout = cmp.Or(c.Timeout, 5*time.Second)
	c.Attempts = cmp.Or(c.Attempts, 3)
	c.Backoff = cmp.Or(c.Backoff, 100*time.Millisecond)
	c.MaxSkew = cmp.Or(c.MaxSkew, 10*time.Minute)
	c.Grace = cmp.Or(c.Grace, 250*time.Millisecond)
	c.MirrorWait = cmp.Or(c.MirrorWait, 2*time.Minute)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Refusal codes of minecart_ledger_cosign_refusals_total besides the HTTP
// statuses of a witness's answer ("400", "403", "404", "409", "422",
// "5xx", "other").
const (
	RefusedTimeout = "timeout" // no answer within CosignConfig.Timeout
	RefusedNetwork = "network" // connection refused, reset, ...
	RefusedGarbage = "garbage" // a 200 whose body is not a valid cosignature of the checkpoint by that witness's key, or a 409 without a size
	RefusedSkew    = "skew"    // a valid cosignature whose timestamp is more than MaxSkew from the ledger's clock
	RefusedAhead   = "ahead"   // the witness holds a larger tree than the checkpoint offered
)

// Cosigner asks a policy's witnesses, in parallel, to cosign a checkpoint
// (c2sp.org/tlog-witness add-checkpoint) and keeps, per witness, the
// size it last cosigned (learned from its 200s and 409s) so the next
// request carries the right old size and consistency proof.
type Cosigner struct {
	cfg CosignConfig
	mu  sync.Mutex
	old map[string]uint64 // witness name -> the size it holds, as far as known

	latency  *prometheus.HistogramVec
	refusals *prometheus.CounterVec
}

// NewCosigner returns a Cosigner for cfg.Policy.
func NewCosigner(cfg CosignConfig) (*Cosigner, error) {
	if cfg.Policy == nil {
		return nil, errors.New("ledger cosigner: no witness policy")
	}
	cfg = cfg.withDefaults()
	m := prom.NewMetrics(cfg.Registerer)
	c := &Cosigner{
		cfg: cfg, old: map[string]uint64{},
		latency: m.HistogramVec("minecart_ledger_cosign_seconds", "Time from sending add-checkpoint to a witness to its valid cosignature, by witness.",
			[]float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}, "witness"),
		refusals: m.CounterVec("minecart_ledger_cosign_refusals_total", "add-checkpoint attempts that brought no valid cosignature, by witness and code (HTTP status, timeout, network, garbage, skew, ahead).", "witness", "code"),
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("ledger cosigner: %w", err)
	}
	for _, w := range cfg.Policy.Witnesses {
		c.latency.WithLabelValues(w.Name)
	}
	return c, nil
}

// ConsistencyProver proves that the tree of second entries extends the
// tree of first entries: the ledger's own book (merkle.Tree).
type ConsistencyProver func(first, second uint64) ([]merkle.Hash, error)

// Cosigned is the outcome of one round.
type Cosigned struct {
	Size uint64
	// Note is the checkpoint as the log signed it with the valid
	// cosignature lines appended, in policy order.
	Note []byte
	// Signers are the witnesses whose cosignature is in Note, in policy
	// order; Refused says why each other one is not ("code: detail").
	Signers []string
	Refused map[string]string
	// Quorum: Note meets the policy.
	Quorum bool
}

type witnessResult struct {
	i    int
	line []byte // the cosignature line, or nil
	why  string
}

// Cosign asks every witness of the policy to cosign checkpoint (a signed
// note of the ledger of size size) and returns once every witness
// answered or gave up, or Grace after the quorum was met, whichever is
// first. It never waits on one witness longer than Attempts × (Timeout +
// backoff).
func (c *Cosigner) Cosign(ctx context.Context, checkpoint string, size uint64, prove ConsistencyProver) Cosigned {
	ws := c.cfg.Policy.Witnesses
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan witnessResult, len(ws))
	for i := range ws {
		go func() {
			line, why := c.ask(ctx, ws[i], checkpoint, size, prove)
			results <- witnessResult{i, line, why}
		}()
	}
	lines := make([][]byte, len(ws))
	out := Cosigned{Size: size, Refused: map[string]string{}}
	build := func() []byte {
		b := []byte(checkpoint)
		for _, l := range lines {
			b = append(b, l...)
		}
		return b
	}
	var grace <-chan time.Time
	for pending := len(ws); pending > 0; {
		select {
		case r := <-results:
			pending--
			if r.line != nil {
				lines[r.i] = r.line
			} else {
				out.Refused[ws[r.i].Name] = r.why
			}
			if grace == nil && c.cfg.Policy.Satisfied(build()) {
				grace = time.After(c.cfg.Grace)
			}
			continue
		case <-grace:
		case <-ctx.Done():
		}
		for i, w := range ws { // the ones still outstanding
			if lines[i] == nil && out.Refused[w.Name] == "" {
				out.Refused[w.Name] = "no answer yet"
			}
		}
		break
	}
	out.Note = build()
	for i, w := range ws {
		if lines[i] != nil {
			out.Signers = append(out.Signers, w.Name)
		}
	}
	out.Quorum = c.cfg.Policy.Satisfied(out.Note)
	return out
}

// ask runs one witness's round: its old size, a consistency proof from
// the book, a 409 answered with the size it gives, transient failures
// retried with backoff. It returns the verified cosignature line or why
// there is none.
func (c *Cosigner) ask(ctx context.Context, w ledger.PolicyWitness, checkpoint string, size uint64, prove ConsistencyProver) ([]byte, string) {
	c.mu.Lock()
	old := c.old[w.Name]
	c.mu.Unlock()
	backoff := c.cfg.Backoff
	why := ""
	conflicts := 0
	for attempt := 0; attempt < c.cfg.Attempts; {
		if old > size {
			c.refuse(w, RefusedAhead)
			return nil, fmt.Sprintf("%s: the witness holds size %d > %d", RefusedAhead, old, size)
		}
		body, err := c.request(old, size, checkpoint, prove)
		if err != nil {
			return nil, "proof: " + err.Error()
		}
		start := time.Now()
		code, resp, err := c.post(ctx, w.WitnessAPI()+"/add-checkpoint", body)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, "cancelled"
			}
			kind := RefusedNetwork
			if errors.Is(err, context.DeadlineExceeded) {
				kind = RefusedTimeout
			}
			c.refuse(w, kind)
			why = kind + ": " + err.Error()
		case code == http.StatusOK && w.Mirror:
			// The mirror's witness took it (its answer is the witness
			// key's line, not the mirror's): now the mirror copies the
			// book up to it and cosigns with the mirror key.
			c.mu.Lock()
			c.old[w.Name] = max(c.old[w.Name], size)
			c.mu.Unlock()
			return c.awaitMirror(ctx, w, checkpoint, size, start)
		case code == http.StatusOK:
			line, kind, err := c.check(w, checkpoint, resp)
			if err == nil {
				c.latency.WithLabelValues(w.Name).Observe(time.Since(start).Seconds())
				c.mu.Lock()
				c.old[w.Name] = max(c.old[w.Name], size)
				c.mu.Unlock()
				return line, ""
			}
			c.refuse(w, kind)
			why = kind + ": " + err.Error()
			if kind == RefusedSkew {
				return nil, why // its clock will not change in a second
			}
		case code == http.StatusConflict:
			n, err := strconv.ParseUint(strings.TrimSuffix(string(resp), "\n"), 10, 64)
			if err != nil || conflicts >= 2 || strconv.FormatUint(n, 10)+"\n" != string(resp) {
				c.refuse(w, RefusedGarbage)
				why = fmt.Sprintf("%s: 409 with body %q", RefusedGarbage, clip(resp))
				break
			}
			c.refuse(w, "409")
			conflicts++
			old = n
			c.mu.Lock()
			c.old[w.Name] = n
			c.mu.Unlock()
			continue // resync at once: not an attempt
		case code >= 500:
			c.refuse(w, "5xx")
			why = fmt.Sprintf("%d: %s", code, clip(resp))
		default: // 400, 403, 404, 422: this checkpoint will not be cosigned by this witness
			label := strconv.Itoa(code)
			if code != 400 && code != 403 && code != 404 && code != 422 {
				label = "other"
			}
			c.refuse(w, label)
			if code == http.StatusUnprocessableEntity {
				c.cfg.Logger.Error("witness refuses the ledger's checkpoint as inconsistent with what it cosigned", "witness", w.Name, "size", size, "old", old, "answer", clip(resp))
			}
			return nil, fmt.Sprintf("%d: %s", code, clip(resp))
		}
		attempt++
		if attempt < c.cfg.Attempts {
			select {
			case <-ctx.Done():
				return nil, "cancelled"
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	return nil, why
}

// awaitMirror polls the mirror checkpoint (GET <URL>/checkpoint) until
// it is this checkpoint with a valid mirror cosignature, and returns that
// line; it gives up after MirrorWait, or at once when the mirror holds a
// larger tree.
func (c *Cosigner) awaitMirror(ctx context.Context, w ledger.PolicyWitness, checkpoint string, size uint64, start time.Time) ([]byte, string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MirrorWait)
	defer cancel()
	wait := 20 * time.Millisecond
	why := "mirror: not yet at size " + strconv.FormatUint(size, 10)
	for {
		code, body, err := c.get(ctx, w.URL+"/checkpoint")
		switch {
		case err != nil:
			why = "mirror: " + err.Error()
		case code == http.StatusNotFound:
			// no mirror checkpoint yet
		case code != http.StatusOK:
			why = fmt.Sprintf("mirror: GET checkpoint: %d", code)
		default:
			n, err := note.Open(body, note.VerifierList(w.Verifier))
			if err != nil {
				why = fmt.Sprintf("%s: mirror checkpoint without a valid mirror cosignature: %v", RefusedGarbage, err)
				break
			}
			if n.Text != noteText(checkpoint) {
				var held uint64
				if lines := strings.SplitN(n.Text, "\n", 3); len(lines) == 3 {
					held, _ = strconv.ParseUint(lines[1], 10, 64)
				}
				if held > size {
					c.refuse(w, RefusedAhead)
					return nil, fmt.Sprintf("%s: the mirror holds size %d > %d", RefusedAhead, held, size)
				}
				break // still copying
			}
			line := []byte(fmt.Sprintf("— %s %s\n", n.Sigs[0].Name, n.Sigs[0].Base64))
			line, kind, err := c.check(w, checkpoint, line)
			if err != nil {
				c.refuse(w, kind)
				return nil, kind + ": " + err.Error()
			}
			c.latency.WithLabelValues(w.Name).Observe(time.Since(start).Seconds())
			return line, ""
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				c.refuse(w, RefusedTimeout)
				return nil, RefusedTimeout + ": " + why
			}
			return nil, "cancelled"
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// noteText is the body of a signed note (up to the blank line).
func noteText(signed string) string {
	if i := strings.Index(signed, "\n\n"); i >= 0 {
		return signed[:i+1]
	}
	return signed
}

// get fetches url within Timeout (at most 64 KiB).
func (c *Cosigner) get(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// request is the add-checkpoint body: "old <size>\n", the consistency
// proof from old to size (one base64 hash a line), an empty line, the
// checkpoint.
func (c *Cosigner) request(old, size uint64, checkpoint string, prove ConsistencyProver) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < size {
		proof, err := prove(old, size)
		if err != nil {
			return nil, err
		}
		for _, h := range proof {
			b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	b.WriteString(checkpoint)
	return b.Bytes(), nil
}

// post sends one request within Timeout and reads at most 64 KiB of the
// answer.
func (c *Cosigner) post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// check verifies a 200's body: exactly one signature line that is a
// valid cosignature v1 of the checkpoint by the witness's key, with a
// timestamp within MaxSkew of Now. It returns that line, or the refusal
// code and why.
func (c *Cosigner) check(w ledger.PolicyWitness, checkpoint string, body []byte) ([]byte, string, error) {
	if len(body) == 0 || len(body) > 4096 || bytes.Count(body, []byte("\n")) != 1 || body[len(body)-1] != '\n' || !bytes.HasPrefix(body, []byte("— ")) {
		return nil, RefusedGarbage, fmt.Errorf("body %q: want one signature line", clip(body))
	}
	n, err := note.Open(append([]byte(checkpoint), body...), note.VerifierList(w.Verifier))
	if err != nil || len(n.Sigs) != 1 {
		return nil, RefusedGarbage, fmt.Errorf("no valid cosignature by %s in %q", w.Verifier.Name(), clip(body))
	}
	ts, err := ledger.CosignatureTime(n.Sigs[0])
	if err != nil {
		return nil, RefusedGarbage, err
	}
	if d := ts.Sub(c.cfg.Now()); d > c.cfg.MaxSkew || d < -c.cfg.MaxSkew {
		return nil, RefusedSkew, fmt.Errorf("cosignature timestamp %s is %v from the ledger's clock (at most ±%v)", ts.UTC().Format(time.RFC3339), d.Round(time.Second), c.cfg.MaxSkew)
	}
	return body, "", nil
}

func (c *Cosigner) refuse(w ledger.PolicyWitness, code string) {
	c.refusals.WithLabelValues(w.Name, code).Inc()
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return strings.TrimSpace(string(b))
}
