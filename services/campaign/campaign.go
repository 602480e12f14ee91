// Package campaign is minecart's partner campaigns: bonus rules written in
// CEL over one vehicle-day's score, submitted and signed by a partner,
// recorded in the ledger (entry kind 6) and paid as bonus entries (kind 7)
// that anyone holding the book recomputes. It is pure: definitions and
// their canonical bytes, the rule checker and evaluator, the inputs of a
// rule and their canonical bytes, the partner's signature, the budget's
// allocation, and the audit of a book. docs/campaigns.md is the
// specification.
package campaign

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minecart/minecart/services/ids"
)

// The engine a definition names; a definition for another engine or
// version is refused (its rule hash would not recompute the same).
const (
	Engine        = "cel-go"
	EngineVersion = "v0.33.3"
	VarsVersion   = "minecart-campaign-vars/1"
)

// Limits of a definition.
const (
	MaxRuleBytes = 4096          // rule source
	MaxCost      = 1000          // static cost estimate (upper bound) and runtime cost limit
	MaxCap       = 100_000       // points per vehicle-day
	MaxBudget    = 1_000_000_000 // points per campaign
	MaxDays      = 366           // schedule length
	MaxNameBytes = 64            // campaign name
	MaxTextBytes = 512           // title
)

// ErrDefinition marks a definition that is refused.
var ErrDefinition = errors.New("invalid campaign definition")

// Definition is what a partner submits: a rule and its limits. Its
// canonical bytes (Canonical) are what the partner signs and what the
// campaign entry's rule_hash is the SHA-256 of.
type Definition struct {
	Partner string `json:"partner"`
	Name    string `json:"name"`  // [a-z0-9-], unique per partner; the campaign id is "<partner>/<name>"
	Title   string `json:"title"` // shown to owners
	// Rule is a CEL expression of type int over the variables Vars: the
	// bonus points of one vehicle-day, clamped to [0, Cap].
	Rule string `json:"rule"`
	// Start and End are local dates yyyy-mm-dd, inclusive: the days (the
	// score's date) the campaign pays for.
	Start  string `json:"start"`
	End    string `json:"end"`
	Budget int64  `json:"budget"` // total points the campaign may pay
	Cap    int64  `json:"cap"`    // points per vehicle-day at most
}

// ID is the campaign id "<partner>/<name>".
func (d *Definition) ID() string { return d.Partner + "/" + d.Name }

// Validate checks everything but the rule (Compile checks the rule).
func (d *Definition) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("campaign %q: %s: %w", d.ID(), fmt.Sprintf(format, a...), ErrDefinition)
	}
	if err := ids.Partner(d.Partner); err != nil {
		return bad("partner: %v", err)
	}
	if d.Name == "" || len(d.Name) > MaxNameBytes || strings.Trim(d.Name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return bad("name %q: want 1 to %d of [a-z0-9-]", d.Name, MaxNameBytes)
	}
	if len(d.Title) > MaxTextBytes || !utf8.ValidString(d.Title) {
		return bad("title: at most %d bytes of UTF-8", MaxTextBytes)
	}
	if d.Rule == "" || len(d.Rule) > MaxRuleBytes || !utf8.ValidString(d.Rule) {
		return bad("rule: 1 to %d bytes of UTF-8", MaxRuleBytes)
	}
	start, err1 := ParseDate(d.Start)
	end, err2 := ParseDate(d.End)
	if err := errors.Join(err1, err2); err != nil {
		return bad("schedule: %v", err)
	}
	if end < start || end-start+1 > MaxDays {
		return bad("schedule %s..%s: want start <= end, at most %d days", d.Start, d.End, MaxDays)
	}
	if d.Budget < 1 || d.Budget > MaxBudget {
		return bad("budget %d: want 1..%d", d.Budget, MaxBudget)
	}
	if d.Cap < 1 || d.Cap > MaxCap || d.Cap > d.Budget {
		return bad("cap %d: want 1..%d and <= budget", d.Cap, MaxCap)
	}
	return nil
}

// Covers reports whether the campaign's schedule holds the local date.
func (d *Definition) Covers(date string) bool { return date >= d.Start && date <= d.End }

// defVersion is the first byte of a canonical definition.
const defVersion = 1

// Canonical is the definition's canonical encoding (docs/campaigns.md):
//
//	01 engine engine_version vars_version var_count (name type)* partner name title rule start end budget cap
//
// strings as a 4-byte big-endian length then the bytes, var_count as 4
// bytes big-endian, budget and cap as 8-byte big-endian.
func (d *Definition) Canonical() []byte {
	b := []byte{defVersion}
	b = appendStr(b, Engine)
	b = appendStr(b, EngineVersion)
	b = appendStr(b, VarsVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(Vars)))
	for _, v := range Vars {
		b = appendStr(b, v.Name)
		b = appendStr(b, v.Type)
	}
	for _, s := range [...]string{d.Partner, d.Name, d.Title, d.Rule, d.Start, d.End} {
		b = appendStr(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(d.Budget))
	b = binary.BigEndian.AppendUint64(b, uint64(d.Cap))
	return b
}

// RuleHash is SHA-256 of the canonical definition.
func (d *Definition) RuleHash() [32]byte { return sha256.Sum256(d.Canonical()) }

// ParseDefinition decodes canonical definition bytes; it refuses another
// engine, version or variable list, and anything that does not re-encode
// to the same bytes.
func ParseDefinition(b []byte) (Definition, error) {
	r := reader{b: b}
	var d Definition
	if r.byte() != defVersion {
		return d, fmt.Errorf("definition version: %w", ErrDefinition)
	}
	if eng, ver, vv := r.str(), r.str(), r.str(); eng != Engine || ver != EngineVersion || vv != VarsVersion {
		return d, fmt.Errorf("definition for %s %s (%s), this is %s %s (%s): %w", eng, ver, vv, Engine, EngineVersion, VarsVersion, ErrDefinition)
	}
	n := r.u32()
	if int(n) != len(Vars) {
		return d, fmt.Errorf("definition declares %d variables, want %d: %w", n, len(Vars), ErrDefinition)
	}
	for _, v := range Vars {
		if r.str() != v.Name || r.str() != v.Type {
			return d, fmt.Errorf("definition's variables differ from %s: %w", VarsVersion, ErrDefinition)
		}
	}
	d.Partner, d.Name, d.Title, d.Rule, d.Start, d.End = r.str(), r.str(), r.str(), r.str(), r.str(), r.str()
	d.Budget, d.Cap = int64(r.u64()), int64(r.u64())
	if r.err != nil || len(r.b) != 0 {
		return d, fmt.Errorf("definition truncated or trailing bytes: %w", ErrDefinition)
	}
	if err := d.Validate(); err != nil {
		return d, err
	}
	if string(d.Canonical()) != string(b) {
		return d, fmt.Errorf("definition not canonical: %w", ErrDefinition)
	}
	return d, nil
}

// ParseDate parses a date yyyy-mm-dd and returns its day number (days
// since 1970-01-01).
func ParseDate(s string) (int64, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return 0, fmt.Errorf("date %q: want yyyy-mm-dd", s)
	}
	return t.Unix() / 86400, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// reader decodes big-endian fields, remembering the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil || uint64(len(r.b)) < n {
		r.err, r.b = errors.New("short input"), nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str() string { return string(r.take(uint64(r.u32()))) }
