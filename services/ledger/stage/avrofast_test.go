package stage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// TestEntryEncoderMatchesGoavro: the hand-written Entry encoder writes the
// same bytes as goavro through the Serde, for random entries of every kind.
func TestEntryEncoderMatchesGoavro(t *testing.T) {
	serde := schemas.SingleObject()
	enc := newEntryEncoder(serde)
	if enc.header == nil {
		t.Fatal("fast encoder disabled: sample did not match the Serde")
	}
	r := rand.New(rand.NewPCG(8, 9))
	str := func() string { return fmt.Sprintf("%016x", r.Uint64())[:r.IntN(16)] }
	for i := 0; i < 500; i++ {
		e := ledger.Entry{Kind: ledger.Kind(1 + r.IntN(3)), ID: str(), VehicleID: str(), Account: str(), Date: str(), ConfigVersion: str(),
			Points: r.Int64() >> r.IntN(64), Amount: r.Int64()>>r.IntN(64) - r.Int64()>>r.IntN(64), Reason: str(), RedemptionID: str(), Ref: str()}
		if r.IntN(2) == 0 {
			e.EventsHash = []byte(str())
		}
		a := &ledger.Appended{Entry: e, Raw: []byte(str()), LeafIndex: r.Uint64() >> r.IntN(64),
			Block: &ledger.Block{Header: ledger.Header{Height: r.Uint64() >> 1 >> r.IntN(63), TreeSize: r.Uint64() >> 1 >> r.IntN(63), TimestampMs: r.Int64() - r.Int64(), Root: merkle.Hash{byte(i)}}, Checkpoint: str()}}
		proof := make([]merkle.Hash, r.IntN(30))
		for j := range proof {
			proof[j][0] = byte(j)
		}
		want, err := serde.Encode(schemas.LedgerEntry, entryNative(a, proof))
		if err != nil {
			t.Fatal(err)
		}
		got, err := enc.appendEncode(nil, a, proof, map[string]any{})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("entry %d: fast encoding differs from goavro:\n%x\n%x", i, got, want)
		}
	}
}
