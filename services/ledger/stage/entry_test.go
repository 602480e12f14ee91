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

// TestEntryRecordMatchesGoavro: the entries topic records the stage writes
// are byte for byte goavro's encoding of the minecart.ledger.Entry native
// the ledger wrote before the typed codec, for random entries of every
// kind.
func TestEntryRecordMatchesGoavro(t *testing.T) {
	serde := schemas.SingleObject()
	var p Processor
	r := rand.New(rand.NewPCG(8, 9))
	str := func() string { return fmt.Sprintf("%016x", r.Uint64())[:r.IntN(16)] }
	for i := 0; i < 500; i++ {
		plus, minus := r.Int64()>>r.IntN(64), r.Int64()>>r.IntN(64) // amounts of either sign
		e := ledger.Entry{Kind: ledger.Kind(1 + r.IntN(4)), ID: str(), VehicleID: str(), Account: str(), Date: str(), ConfigVersion: str(),
			Points: r.Int64() >> r.IntN(64), Amount: plus - minus, Reason: str(), RedemptionID: str(), Ref: str(),
			Revision: int64(r.Int32()), RefLeaf: r.Uint64() >> 1 >> r.IntN(63)}
		if r.IntN(2) == 0 {
			e.EventsHash = []byte(str())
		}
		a := &ledger.Appended{Entry: &e, Raw: []byte(str()), LeafIndex: r.Uint64() >> r.IntN(64),
			Block: &ledger.Block{Header: ledger.Header{Height: r.Uint64() >> 1 >> r.IntN(63), TreeSize: r.Uint64() >> 1 >> r.IntN(63), TimestampMs: r.Int64() - r.Int64(), Root: merkle.Hash{byte(i)}}, Checkpoint: str()}}
		proof := make([]merkle.Hash, r.IntN(30))
		for j := range proof {
			proof[j][0] = byte(j)
		}
		want, err := serde.Encode(schemas.LedgerEntry, entryNative(a, proof))
		if err != nil {
			t.Fatal(err)
		}
		got, err := serde.AppendMarshal(nil, entryRecord(&p.enc[0].rec, a, proof))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("entry %d: typed encoding differs from goavro:\n%x\n%x", i, got, want)
		}
	}
}

// entryNative is the goavro native of an entries topic record, as the
// ledger wrote it before the typed codec.
func entryNative(a *ledger.Appended, proof []merkle.Hash) map[string]any {
	p := make([]any, len(proof))
	for i := range proof {
		p[i] = proof[i][:]
	}
	h, e := &a.Block.Header, a.Entry
	eh := e.EventsHash
	if eh == nil {
		eh = []byte{}
	}
	rev, refLeaf, points := int32(0), int64(-1), int64(0)
	switch e.Kind {
	case ledger.KindCredit:
		points = e.Points
	case ledger.KindRescore:
		rev, refLeaf, points = int32(e.Revision), int64(e.RefLeaf), e.Points
	}
	return map[string]any{
		"entry": a.Raw, "leaf_index": int64(a.LeafIndex), "block_height": int64(h.Height), "tree_size": int64(h.TreeSize),
		"root": h.Root[:], "proof": p, "checkpoint": a.Block.Checkpoint, "kind": e.Kind.String(), "id": e.ID,
		"vehicle_id": e.VehicleID, "account": e.Account, "delta": e.Delta(), "date": e.Date,
		"config_version": e.ConfigVersion, "events_hash": eh, "reason": e.Reason, "redemption_id": e.RedemptionID,
		"ref": e.Ref, "block_timestamp_ms": h.TimestampMs,
		"revision": rev, "ref_leaf_index": refLeaf, "points": points,
	}
}
