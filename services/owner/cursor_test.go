package owner

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzDecodeCursor: any string is either refused with a 400 or decodes to
// a cursor of the right request that survives a round trip; nothing panics.
func FuzzDecodeCursor(f *testing.F) {
	key := queryKey("track", "v-1", "0", "1000", "50")
	f.Add("")
	f.Add("!!!")
	f.Add(cursor{Query: key, Mode: "raw", TimeMs: 5, Device: "d", Seq: 3}.encode())
	f.Add(cursor{Query: key, Mode: "ds", Bucket: 7, Total: 9}.encode())
	f.Add(cursor{Query: queryKey("other"), Leaf: 4}.encode())
	f.Fuzz(func(t *testing.T, s string) {
		c, ok, err := decodeCursor(s, key)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != http.StatusBadRequest {
				t.Fatalf("%q: %v is not a 400", s, err)
			}
			return
		}
		if ok != (s != "") {
			t.Fatalf("%q: ok %v", s, ok)
		}
		if !ok {
			return
		}
		if c.Query != key {
			t.Fatalf("%q: accepted a cursor of %q", s, c.Query)
		}
		again, _, err := decodeCursor(c.encode(), key)
		if err != nil || again != c {
			t.Fatalf("%q: round trip %+v != %+v (%v)", s, again, c, err)
		}
	})
}
