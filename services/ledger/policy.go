package ledger

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	tdnote "github.com/transparency-dev/formats/note"
	tdwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// A witness policy (the tlog-policy format of Sigsum and
// transparency-dev/formats/witness, docs/ledger.md "The witness policy")
// says which witnesses the ledger asks to cosign and how many of their
// cosignatures make a checkpoint publishable:
//
//	log <vkey of the log> [URL]
//	witness <name> <cosignature v1 vkey> <URL of the witness's API>
//	group <name> <k|any|all> <member> ...
//	quorum <name|none>
//
// The quorum (and every group) is parsed and evaluated by
// github.com/transparency-dev/formats/witness.ParsePolicy; this file adds
// what the ledger needs besides: the witnesses' names, keys and URLs in
// file order, and the log line.

// Policy is a parsed witness policy.
type Policy struct {
	// Log is the verifier key of the `log` line ("" if none).
	Log string
	// Witnesses in the order of the file.
	Witnesses []PolicyWitness
	quorum    tdwitness.Group
	text      []byte
}

// PolicyWitness is one `witness` line.
type PolicyWitness struct {
	Name     string // the policy's name for it (metrics label)
	VKey     string // its cosignature v1 verifier key ("<key name>+<id>+<base64(0x04||pub)>")
	URL      string // the root of its tlog-witness API (add-checkpoint is URL + "/add-checkpoint")
	Verifier note.Verifier
}

// ParsePolicy parses a policy file. Every witness needs a URL (the ledger
// calls it) and a cosignature v1 Ed25519 key; the quorum is required.
func ParsePolicy(text []byte) (*Policy, error) {
	q, err := tdwitness.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	p := &Policy{quorum: q, text: slices.Clone(text)}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 || p.Log != "" {
				return nil, fmt.Errorf("witness policy: log line %q: want one `log <vkey> [URL]`", line)
			}
			if _, err := note.NewVerifier(f[1]); err != nil {
				return nil, fmt.Errorf("witness policy: log key %q: %w", f[1], err)
			}
			p.Log = f[1]
		case "witness":
			v, err := tdnote.NewVerifierForCosignatureV1(f[2]) // ParsePolicy checked 4 fields and the key
			if err != nil {
				return nil, fmt.Errorf("witness policy: witness %s: %w", f[1], err)
			}
			// formats/note also takes a plain Ed25519 (0x01) or an ML-DSA
			// key here; the ledger wants what its witnesses sign with: a
			// cosignature v1 Ed25519 key (0x04) whose key id is its own.
			parts := strings.SplitN(f[2], "+", 3)
			raw, _ := base64.StdEncoding.DecodeString(parts[2])
			if len(raw) != 33 || raw[0] != 0x04 || parts[1] != fmt.Sprintf("%08x", v.KeyHash()) {
				return nil, fmt.Errorf("witness policy: witness %s: key %q: want a cosignature v1 Ed25519 key (type 0x04) with its key id", f[1], f[2])
			}
			u, err := url.Parse(f[3])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("witness policy: witness %s: URL %q: want http(s)://host/...", f[1], f[3])
			}
			for _, w := range p.Witnesses {
				if w.Verifier.Name() == v.Name() && w.Verifier.KeyHash() == v.KeyHash() {
					return nil, fmt.Errorf("witness policy: witnesses %s and %s have the same key", w.Name, f[1])
				}
			}
			p.Witnesses = append(p.Witnesses, PolicyWitness{Name: f[1], VKey: f[2], URL: strings.TrimSuffix(f[3], "/"), Verifier: v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	return p, nil
}

// Text is the policy file as parsed.
func (p *Policy) Text() []byte { return p.text }

// Threshold is the top-level quorum's k (0 for `quorum none`).
func (p *Policy) Threshold() int { return p.quorum.N }

// CheckLog reports whether the policy's log line, if any, names the key
// vkey (the ledger's `minecart ledger pubkey`).
func (p *Policy) CheckLog(vkey string) error {
	if p.Log != "" && p.Log != vkey {
		return fmt.Errorf("witness policy: log %q, but the ledger's key is %q", p.Log, vkey)
	}
	return nil
}

// Satisfied reports whether the signed note carries enough valid
// cosignatures of the policy's witnesses to meet the quorum. It checks
// cosignatures only: the log's signature is VerifyCheckpoint's.
func (p *Policy) Satisfied(signed []byte) bool { return p.quorum.Satisfied(signed) }

// Signers lists the names of the policy's witnesses whose cosignature on
// the signed note verifies, in policy order.
func (p *Policy) Signers(signed []byte) []string {
	var out []string
	for _, w := range p.Witnesses {
		if n, err := note.Open(signed, note.VerifierList(w.Verifier)); err == nil && len(n.Sigs) == 1 {
			out = append(out, w.Name)
		}
	}
	return out
}

// ErrQuorum marks a checkpoint without the policy's quorum of
// cosignatures.
var ErrQuorum = errors.New("witness quorum not met")

// VerifyCosigned checks a cosigned checkpoint: the log's signature by pub
// (VerifyCheckpoint) and the policy's quorum of cosignatures. It returns
// the checkpoint and the names of the witnesses that cosigned it.
func (p *Policy) VerifyCosigned(text string, pub ed25519.PublicKey) (Checkpoint, []string, error) {
	cp, err := VerifyCheckpoint(text, pub)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	signers := p.Signers([]byte(text))
	if !p.Satisfied([]byte(text)) {
		return cp, signers, fmt.Errorf("checkpoint of size %d cosigned by %v: %w", cp.Size, signers, ErrQuorum)
	}
	return cp, signers, nil
}

// CosignatureTime is the timestamp of a tlog-cosignature v1 signature
// (seconds since the epoch, the 8 bytes after the key id).
func CosignatureTime(sig note.Signature) (time.Time, error) {
	return tdnote.CoSigV1Timestamp(sig)
}
