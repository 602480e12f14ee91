package ledger

import (
	"reflect"
	"strings"
	"time"

	"github.com/minecart/minecart/services/pseudonym"
)

// IdentityFields are the fields of an Entry that name a vehicle or an
// account, with the kind of identity each names. Every entry kind puts
// identities only in these fields; Pseudonymize replaces them, whichever
// of them the Entry type has (CounterAccount comes with transfers).
var IdentityFields = []struct {
	Name string
	Kind pseudonym.Kind
}{
	{"VehicleID", pseudonym.Vehicle},
	{"Account", pseudonym.Account},
	{"CounterAccount", pseudonym.Account},
}

// Namer returns the pseudonym of identity id of kind k, or false if it has
// none (a lookup that makes no key).
type Namer func(k pseudonym.Kind, id string) (string, bool)

// Pseudonymize replaces the identities of e by their pseudonyms
// (docs/ledger.md, "Pseudonymous leaves"):
//
//  1. every identity field (IdentityFields) that is not empty and not
//     already a pseudonym becomes name(kind, value);
//  2. a Ref of the form "<vehicle>/<yyyy-mm-dd>" (the id of the credit an
//     adjustment corrects) has its vehicle replaced by name(vehicle, ...);
//  3. ID, Ref and Reason are cut into maximal runs of id bytes
//     [A-Za-z0-9._-] (a pseudonym already in the text is kept whole), and
//     each run equal to a clear identity of step 1 becomes its pseudonym:
//     a credit id "<vehicle>/<date>" becomes "<pseudonym>/<date>".
//
// An identity name returns false for is left in clear: used with a
// lookup-only name, Pseudonymize computes the id an entry has in the book
// if its keys exist.
func Pseudonymize(e *Entry, name Namer) {
	v := reflect.ValueOf(e).Elem()
	repl := map[string]string{}
	for _, f := range IdentityFields {
		fv := v.FieldByName(f.Name)
		if !fv.IsValid() || fv.Kind() != reflect.String {
			continue
		}
		id := fv.String()
		if id == "" || pseudonym.Is(id) {
			continue
		}
		p, ok := name(f.Kind, id)
		if !ok {
			continue
		}
		fv.SetString(p)
		if _, dup := repl[id]; !dup {
			repl[id] = p
		}
	}
	if vid, date, ok := strings.Cut(e.Ref, "/"); ok && isDate(date) && !pseudonym.Is(vid) {
		if p, ok := name(pseudonym.Vehicle, vid); ok {
			e.Ref = p + "/" + date
		}
	}
	if len(repl) > 0 {
		e.ID = replaceTokens(e.ID, repl)
		e.Ref = replaceTokens(e.Ref, repl)
		e.Reason = replaceTokens(e.Reason, repl)
	}
}

// Identities lists the pseudonyms e names in its identity fields.
func (e *Entry) Identities() []string {
	v := reflect.ValueOf(e).Elem()
	var out []string
	for _, f := range IdentityFields {
		fv := v.FieldByName(f.Name)
		if fv.IsValid() && fv.Kind() == reflect.String && fv.String() != "" {
			out = append(out, fv.String())
		}
	}
	return out
}

func isDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil && len(s) == len(time.DateOnly)
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// replaceTokens replaces every maximal run of id bytes of s that is a key
// of repl, keeping pseudonyms already in s whole.
func replaceTokens(s string, repl map[string]string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], pseudonym.Prefix) && i+pseudonym.Len <= len(s) && pseudonym.Is(s[i:i+pseudonym.Len]) &&
			(i+pseudonym.Len == len(s) || !idByte(s[i+pseudonym.Len])) {
			b.WriteString(s[i : i+pseudonym.Len])
			i += pseudonym.Len
			continue
		}
		if !idByte(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && idByte(s[j]) {
			j++
		}
		if p, ok := repl[s[i:j]]; ok {
			b.WriteString(p)
			changed = true
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	if !changed {
		return s
	}
	return b.String()
}
