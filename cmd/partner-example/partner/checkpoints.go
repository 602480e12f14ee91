package partner

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// Checkpoints is the partner's check of the published checkpoints (the
// records of minecart.ledger.checkpoints, docs/partners.md "Checking the
// witness quorum"): each must carry the ledger's signature and the
// policy's quorum of valid cosignatures, no forged one, and extend the
// last one accepted, which is kept in StatePath (atomically) across
// restarts. A partner that does this is a witness of the book too: a
// split view shown to it is refused and logged.
type Checkpoints struct {
	Policy    *ledger.Policy
	LedgerKey ed25519.PublicKey
	// StatePath keeps the last checkpoint accepted ("": in memory only).
	StatePath string
	// Prove gives a consistency proof between two tree sizes (default
	// ConsistencyFrom(LedgerURL) in Run).
	Prove ledger.ConsistencyProof

	mu   sync.Mutex
	last string
	read bool
}

// Last is the last checkpoint accepted ("" for none).
func (c *Checkpoints) Last() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load()
}

func (c *Checkpoints) load() (string, error) {
	if !c.read && c.StatePath != "" {
		last, err := ledger.ReadSeen(c.StatePath)
		if err != nil {
			return "", err
		}
		c.last = last
	}
	c.read = true
	return c.last, nil
}

// ErrOlder is Check's answer to a checkpoint smaller than the last one
// accepted that is valid (signature, quorum) and consistent with it: the
// same publication read late from another topic (the redemptions and
// campaigns topics each carry every one). It is not kept; the last
// accepted stays.
var ErrOlder = errors.New("older than the last checkpoint accepted, and consistent with it")

// Check checks a published checkpoint and, if it passes, keeps it as the
// last accepted. The error wraps ledger.ErrQuorum,
// ledger.ErrForgedCosignature, ledger.ErrNotConsistent or
// ledger.ErrSignature, or is ErrOlder (nothing wrong, nothing kept).
func (c *Checkpoints) Check(text string) (ledger.Checkpoint, []string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, err := c.load()
	if err != nil {
		return ledger.Checkpoint{}, nil, err
	}
	prove := c.Prove
	if prove == nil {
		prove = func(uint64, uint64) ([]merkle.Hash, error) { return nil, errors.New("no consistency proof source") }
	}
	if last != "" {
		prev, perr := ledger.VerifyCheckpoint(last, c.LedgerKey)
		cp, cerr := ledger.VerifyCheckpoint(text, c.LedgerKey)
		if perr == nil && cerr == nil && cp.Origin == prev.Origin && cp.Size < prev.Size {
			// Valid on its own, then the last accepted must extend it.
			cp, signers, err := c.Policy.CheckPublished(text, c.LedgerKey, "", prove)
			if err != nil {
				return cp, signers, err
			}
			proof, err := prove(cp.Size, prev.Size)
			if err != nil {
				return cp, signers, fmt.Errorf("consistency proof %d -> %d: %w", cp.Size, prev.Size, err)
			}
			if err := merkle.VerifyConsistency(cp.Size, prev.Size, proof, cp.Root, prev.Root); err != nil {
				return cp, signers, fmt.Errorf("size %d root %s is not a prefix of the last accepted size %d root %s (a fork or a rewritten history): %v: %w", cp.Size, cp.Root, prev.Size, prev.Root, err, ledger.ErrNotConsistent)
			}
			return cp, signers, ErrOlder
		}
	}
	cp, signers, err := c.Policy.CheckPublished(text, c.LedgerKey, last, prove)
	if err != nil {
		return cp, signers, err
	}
	if c.StatePath != "" {
		if err := ledger.WriteSeen(c.StatePath, text); err != nil {
			return cp, signers, err
		}
	}
	c.last = text
	return cp, signers, nil
}

// ConsistencyFrom asks the ledger's proof API (base: http://<http-addr>)
// for consistency proofs: GET /v1/ledger/consistency?first=M&second=N,
// whose "proof" is a list of hex hashes. The proof is checked by
// Check, so the API needs no trust.
func ConsistencyFrom(base string, client *http.Client) ledger.ConsistencyProof {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return func(first, second uint64) ([]merkle.Hash, error) {
		u := base + "/v1/ledger/consistency?" + url.Values{"first": {strconv.FormatUint(first, 10)}, "second": {strconv.FormatUint(second, 10)}}.Encode()
		resp, err := client.Get(u)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		var v struct {
			Proof []string `json:"proof"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		out := make([]merkle.Hash, len(v.Proof))
		for i, h := range v.Proof {
			raw, err := hex.DecodeString(h)
			if err != nil || len(raw) != merkle.HashSize {
				return nil, fmt.Errorf("GET %s: proof hash %q", u, h)
			}
			copy(out[i][:], raw)
		}
		return out, nil
	}
}

// followCheckpoints reads minecart.ledger.checkpoints (compacted, one
// partition, key = the size in 20 digits) from its start and checks each
// record; a refused one is logged and handed to OnCheckpoint, never
// accepted.
func (c *consumer) followCheckpoints(ctx context.Context, r *kafka.Reader) error {
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("partner: fetch %s: %w", pipelines.TopicLedgerCheckpoints, err)
		}
		if isControl(m) {
			continue
		}
		c.checkpoint(m)
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			return fmt.Errorf("partner: commit %s: %w", pipelines.TopicLedgerCheckpoints, err)
		}
	}
}

// checkpoint checks one published checkpoint record (of the checkpoints
// topic or a partner topic); without Config.Checkpoints (no policy) a
// partner topic's checkpoint is passed over.
func (c *consumer) checkpoint(m kafka.Message) {
	if c.cfg.Checkpoints == nil {
		c.log.Debug("published checkpoint passed over (no -policy)", "topic", m.Topic, "offset", m.Offset)
		return
	}
	cp, signers, err := c.cfg.Checkpoints.Check(string(m.Value))
	switch {
	case errors.Is(err, ErrOlder):
		c.log.Debug("published checkpoint already covered", "topic", m.Topic, "size", cp.Size)
	case err != nil:
		c.log.Error("published checkpoint refused", "topic", m.Topic, "offset", m.Offset, "key", string(m.Key), "err", err)
	default:
		c.log.Info("published checkpoint accepted", "topic", m.Topic, "size", cp.Size, "cosigned_by", signers)
	}
	if c.cfg.OnCheckpoint != nil {
		c.cfg.OnCheckpoint(cp, signers, err)
	}
}
