package ids

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"v1", true}, {"LSVAU2180N2183294", true}, {"owner-00009", true}, {"007", true}, {"a.b_c-d", true},
		{strings.Repeat("x", MaxLen), true},
		{"", false}, {strings.Repeat("x", MaxLen+1), false}, {"a/b c", false}, {"a/b", false}, {"a b", false},
		{".", false}, {"..", false}, {".hidden", false}, {"-x", false}, {"vehicle:v1", false}, {"a%2f", false},
		{"a?b", false}, {"a#b", false}, {"é", false}, {"a\x00", false}, {"a\n", false}, {"ünïcode", false},
	} {
		for name, fn := range map[string]func(string) error{"Vehicle": Vehicle, "Owner": Owner, "Partner": Partner, "Valid": Valid} {
			err := fn(c.id)
			if (err == nil) != c.ok {
				t.Errorf("%s(%q) = %v, want ok=%v", name, c.id, err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("%s(%q): %v does not wrap ErrInvalid", name, c.id, err)
			}
		}
	}
}

// FuzzValid: whatever passes is a path segment that needs no escaping and
// survives the round trip through a URL path unchanged.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"v1", "a/b c", "..", "007", "\xff", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) != nil {
			return
		}
		if url.PathEscape(s) != s || s == "." || s == ".." || len(s) > MaxLen || strings.ContainsAny(s, "/: \t%") {
			t.Fatalf("%q passed", s)
		}
	})
}
