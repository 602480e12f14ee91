package settlement

import (
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// FuzzDecode feeds arbitrary bytes to the decoding of every record
// settlement reads from other writers, and to the conversions into its
// state. Invariants: no panic; bytes that decode re-encode to a record that
// decodes to the same value.
func FuzzDecode(f *testing.F) {
	serde := schemas.SingleObject()
	for _, r := range []schemas.Record{
		&avro.RedemptionRequest{IdempotencyKey: "k", Owner: "o", Partner: "p", ItemID: "i", Quantity: 1, MaxPoints: ptr(int64(5)), RequestedMs: t0},
		&avro.AccountBinding{VehicleID: "v", Owner: "o", UpdatedMs: t0},
		&avro.CatalogItem{Partner: "p", ItemID: "i", PricePoints: 3, Stock: ptr(int64(2)), Active: true, UpdatedMs: t0},
		&avro.PartnerAck{RedemptionID: "r", Partner: "p", Status: avro.AckStatusFulfilled, Reference: "x", AckedMs: t0},
	} {
		b, err := serde.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xC3, 0x01})
	f.Add([]byte{0, 0, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r avro.RedemptionRequest
		if err := serde.Unmarshal(b, &r); err == nil {
			again, err := serde.Marshal(&r)
			if err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
			var r2 avro.RedemptionRequest
			if err := serde.Unmarshal(again, &r2); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("request round trip: %+v != %+v (%v)", r, r2, err)
			}
		}
		var x avro.AccountBinding
		if serde.Unmarshal(b, &x) == nil {
			BindingFrom(&x)
		}
		var it avro.CatalogItem
		if serde.Unmarshal(b, &it) == nil {
			ItemFrom(&it)
		}
		var a avro.PartnerAck
		if serde.Unmarshal(b, &a) == nil {
			AckFrom(&a)
		}
		var e avro.LedgerEntry
		if serde.Unmarshal(b, &e) == nil {
			EntryFrom(&e)
		}
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
