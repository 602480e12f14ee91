package settlement

import "testing"

// FuzzRestore feeds arbitrary changelog records to a book. Invariant: a
// record either loads or is refused with an error; nothing panics, and the
// book stays usable.
func FuzzRestore(f *testing.F) {
	f.Add("a/alice", []byte(`{"ID":"alice","Balance":5,"Reserved":1}`))
	f.Add("r/x", []byte(`{"ID":"x","Status":"PENDING","Seq":3}`))
	f.Add("m", []byte(`{"Seq":1,"Days":{"2026-11-25":{"Minted":3}}}`))
	f.Add("i/acme/mug", []byte(`{"Item":{"Partner":"acme","ItemID":"mug","PricePoints":1},"Sold":2}`))
	f.Add("zz", []byte(`{}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		b, err := NewBook(DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Restore(key, value)
		b.Restored()
		b.Totals()
		b.Tick(t0).Changes()
	})
}
