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
	"strconv"
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
	// groups and top evaluate the quorum by names (SatisfiedBy).
	groups map[string]policyGroup
	top    string
}

type policyGroup struct {
	k       int
	members []string
}

// PolicyWitness is one `witness` line.
type PolicyWitness struct {
	Name     string // the policy's name for it (metrics label)
	VKey     string // its cosignature v1 verifier key ("<key name>+<id>+<base64(0x04||pub)>")
	URL      string // the root of its tlog-witness API (add-checkpoint is URL + "/add-checkpoint")
	Verifier note.Verifier
	// Mirror: the URL's path ends in /ledger, the tlog-tiles prefix of a
	// mirror (docs/ledger.md, "The mirror in the quorum"): VKey is its
	// mirror key, which cosigns only after the mirror stored and verified
	// the book up to the checkpoint; the ledger reads that cosignature
	// from URL + "/checkpoint" after sending add-checkpoint to the
	// mirror's witness API, URL without the /ledger.
	Mirror bool
}

// WitnessAPI is the root of the witness API the ledger sends
// add-checkpoint to: URL, or for a mirror its URL without /ledger.
func (w PolicyWitness) WitnessAPI() string {
	if w.Mirror {
		return strings.TrimSuffix(w.URL, "/ledger")
	}
	return w.URL
}

// ParsePolicy parses a policy file. Every witness needs a URL (the ledger
// calls it) and a cosignature v1 Ed25519 key; the quorum is required.
func ParsePolicy(text []byte) (*Policy, error) {
	q, err := tdwitness.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	p := &Policy{quorum: q, text: slices.Clone(text), groups: map[string]policyGroup{}}
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
			pu := strings.TrimSuffix(f[3], "/")
			p.Witnesses = append(p.Witnesses, PolicyWitness{Name: f[1], VKey: f[2], URL: pu, Verifier: v, Mirror: strings.HasSuffix(u.Path, "/ledger") || strings.HasSuffix(u.Path, "/ledger/")})
		case "group": // checked by ParsePolicy: k, members defined above
			g := policyGroup{members: f[3:]}
			switch f[2] {
			case "any":
				g.k = 1
			case "all":
				g.k = len(g.members)
			default:
				fmt.Sscan(f[2], &g.k)
			}
			p.groups[f[1]] = g
		case "quorum":
			p.top = f[1]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	return p, nil
}

// SatisfiedBy reports whether cosignatures by exactly the named
// witnesses would meet the quorum (the same evaluation as Satisfied, by
// names: what a policy requires, for tests and tools).
func (p *Policy) SatisfiedBy(names ...string) bool {
	var eval func(name string, depth int) bool
	eval = func(name string, depth int) bool {
		if g, ok := p.groups[name]; ok && depth < 64 {
			n := 0
			for _, m := range g.members {
				if eval(m, depth+1) {
					n++
				}
			}
			return n >= g.k
		}
		return slices.Contains(names, name)
	}
	if p.top == "" || p.top == "none" {
		return true
	}
	return eval(p.top, 0)
}

// QuorumText says what the quorum is: "2 of 3 witnesses" for a group of
// witnesses only, else the groups spelt out, e.g. "all of (2 of (w1, w2,
// w3), any of (m3))"; "none" for quorum none.
func (p *Policy) QuorumText() string {
	if p.top == "" || p.top == "none" {
		return "none"
	}
	var render func(name string, depth int) string
	render = func(name string, depth int) string {
		g, ok := p.groups[name]
		if !ok || depth > 64 {
			return name
		}
		parts := make([]string, len(g.members))
		for i, m := range g.members {
			parts[i] = render(m, depth+1)
		}
		k := strconv.Itoa(g.k)
		switch {
		case g.k == len(g.members) && g.k > 1:
			k = "all"
		case g.k == 1 && len(g.members) > 1, g.k == 1 && depth > 0:
			k = "any"
		}
		return k + " of (" + strings.Join(parts, ", ") + ")"
	}
	if g, ok := p.groups[p.top]; ok && !slices.ContainsFunc(g.members, func(m string) bool { _, sub := p.groups[m]; return sub }) {
		return fmt.Sprintf("%d of %d witnesses", g.k, len(g.members))
	}
	return render(p.top, 0)
}

// Requires reports whether the quorum cannot be met without witness
// name's cosignature (every other witness's is not enough).
func (p *Policy) Requires(name string) bool {
	var others []string
	for _, w := range p.Witnesses {
		if w.Name != name {
			others = append(others, w.Name)
		}
	}
	return !p.SatisfiedBy(others...)
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
