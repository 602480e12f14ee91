package settlement

import (
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas"
)

// FuzzDecode feeds arbitrary bytes to every decoder of the records
// settlement reads from other writers. Invariants: no panic; bytes that
// decode re-encode to a record that decodes to the same value.
func FuzzDecode(f *testing.F) {
	c := NewCodec(schemas.SingleObject())
	for _, enc := range []func() ([]byte, error){
		func() ([]byte, error) {
			return c.EncodeRequest(RedemptionRequest{IdempotencyKey: "k", Owner: "o", Partner: "p", ItemID: "i", Quantity: 1, MaxPoints: ptr(int64(5)), RequestedAt: t0})
		},
		func() ([]byte, error) { return c.EncodeBinding(Binding{VehicleID: "v", Owner: "o", UpdatedAt: t0}) },
		func() ([]byte, error) {
			return c.EncodeItem(CatalogItem{Partner: "p", ItemID: "i", PricePoints: 3, Stock: ptr(int64(2)), Active: true, UpdatedAt: t0})
		},
		func() ([]byte, error) {
			return c.EncodeAck(PartnerAck{RedemptionID: "r", Partner: "p", Status: AckFulfilled, Reference: "x", AckedAt: t0})
		},
	} {
		b, err := enc()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xC3, 0x01})
	f.Add([]byte{0, 0, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := c.DecodeRequest(b); err == nil {
			again, err := c.EncodeRequest(r)
			if err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
			r2, err := c.DecodeRequest(again)
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("request round trip: %+v != %+v (%v)", r, r2, err)
			}
		}
		_, _ = c.DecodeBinding(b)
		_, _ = c.DecodeItem(b)
		_, _ = c.DecodeAck(b)
		_, _ = c.DecodeEntry(b)
	})
}

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
