package stage

import (
	"bytes"
	"encoding/binary"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// entryEncoder writes minecart.ledger.Entry records without goavro's
// map-walking (about 10x faster; the entries topic gets one record per
// entry). It writes the Avro binary body of the schema by hand after the
// Serde's framing header, which it learns by encoding a sample entry with
// the Serde; if the Serde's bytes for that sample are not the header plus
// exactly this body, it falls back to the Serde for every record. Tests
// cross-check it with goavro on random entries.
type entryEncoder struct {
	serde  *schemas.Serde
	header []byte // nil: use the Serde
}

func newEntryEncoder(serde *schemas.Serde) *entryEncoder {
	enc := &entryEncoder{serde: serde}
	e := ledger.Entry{Kind: ledger.KindCredit, ID: "v/2026-01-01", VehicleID: "v", Date: "2026-01-01", ConfigVersion: "c", Points: -3, EventsHash: []byte{1, 2}}
	a := &ledger.Appended{Entry: e, Raw: []byte{9, 8, 7}, LeafIndex: 300, Block: &ledger.Block{Header: ledger.Header{Height: 1, TreeSize: 301, TimestampMs: -5}, Checkpoint: "cp\n"}}
	proof := []merkle.Hash{{1}, {2}}
	full, err := serde.Encode(schemas.LedgerEntry, entryNative(a, proof))
	if err != nil {
		return enc
	}
	body := appendEntryBody(nil, a, proof)
	if len(full) > len(body) && bytes.Equal(full[len(full)-len(body):], body) {
		enc.header = full[:len(full)-len(body)]
	}
	return enc
}

// appendEncode appends the framed record of a with its proof.
func (enc *entryEncoder) appendEncode(dst []byte, a *ledger.Appended, proof []merkle.Hash, scratch map[string]any) ([]byte, error) {
	if enc.header == nil {
		return enc.serde.AppendEncode(dst, schemas.LedgerEntry, fillEntryNative(scratch, a, proof))
	}
	return appendEntryBody(append(dst, enc.header...), a, proof), nil
}

// appendEntryBody appends the Avro binary body of minecart.ledger.Entry,
// fields in schema order (schemas/ledger_Entry.avsc).
func appendEntryBody(b []byte, a *ledger.Appended, proof []merkle.Hash) []byte {
	h := &a.Block.Header
	e := &a.Entry
	b = avroBytes(b, a.Raw)
	b = binary.AppendVarint(b, int64(a.LeafIndex))
	b = binary.AppendVarint(b, int64(h.Height))
	b = binary.AppendVarint(b, int64(h.TreeSize))
	b = avroBytes(b, h.Root[:])
	if len(proof) > 0 {
		b = binary.AppendVarint(b, int64(len(proof)))
		for i := range proof {
			b = avroBytes(b, proof[i][:])
		}
	}
	b = append(b, 0) // end of array
	b = avroString(b, a.Block.Checkpoint)
	b = binary.AppendVarint(b, int64(e.Kind)-1) // enum EntryKind: credit, debit, adjustment
	b = avroString(b, e.ID)
	b = avroString(b, e.VehicleID)
	b = avroString(b, e.Account)
	b = binary.AppendVarint(b, e.Delta())
	b = avroString(b, e.Date)
	b = avroString(b, e.ConfigVersion)
	b = avroBytes(b, e.EventsHash)
	b = avroString(b, e.Reason)
	b = avroString(b, e.RedemptionID)
	b = avroString(b, e.Ref)
	return binary.AppendVarint(b, h.TimestampMs)
}

// Avro longs are zig-zag varints, which is what binary.AppendVarint writes.

func avroBytes(b, v []byte) []byte {
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

func avroString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// entryNative is the minecart.ledger.Entry native of an appended entry
// with its inclusion proof in the tree after its block.
func entryNative(a *ledger.Appended, proof []merkle.Hash) map[string]any {
	return fillEntryNative(make(map[string]any, 20), a, proof)
}

// fillEntryNative sets every field of m (a map reused across entries).
func fillEntryNative(m map[string]any, a *ledger.Appended, proof []merkle.Hash) map[string]any {
	p := make([]any, len(proof))
	for i := range proof {
		p[i] = proof[i][:]
	}
	h := &a.Block.Header
	e := &a.Entry
	eh := e.EventsHash
	if eh == nil {
		eh = []byte{}
	}
	m["entry"], m["leaf_index"], m["block_height"], m["tree_size"] = a.Raw, int64(a.LeafIndex), int64(h.Height), int64(h.TreeSize)
	m["root"], m["proof"], m["checkpoint"], m["kind"], m["id"] = h.Root[:], p, a.Block.Checkpoint, e.Kind.String(), e.ID
	m["vehicle_id"], m["account"], m["delta"], m["date"] = e.VehicleID, e.Account, e.Delta(), e.Date
	m["config_version"], m["events_hash"], m["reason"], m["redemption_id"] = e.ConfigVersion, eh, e.Reason, e.RedemptionID
	m["ref"], m["block_timestamp_ms"] = e.Ref, h.TimestampMs
	return m
}
