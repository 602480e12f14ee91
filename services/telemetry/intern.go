package telemetry

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Interning: the decoding path of the stages (ingest, scoring) without a
// string allocation per event. A task's events repeat a few device ids,
// vehicle ids and time zones (a vehicle's events come in runs, and a
// partition holds a bounded set of vehicles), so DecodeAvroInterned takes
// those three from an Interner: a lookup by the bytes (Go's m[string(b)]
// does not allocate) that allocates only the first time a string is seen.
// The event id is unique per event and only hashed or re-encoded by the
// stages, so it is not copied at all: it aliases the encoded value.

// DefaultInternCap is the number of strings an Interner's generation holds
// unless told otherwise (NewInterner(0)): 8,192, the device and vehicle ids
// of ~4,000 vehicles. A design-peak partition (docs/scale.md, "Partitions")
// holds ~21,000 vehicles, but a partition's records come in runs of one
// vehicle (the gateway's batches), so a miss costs one allocation per run.
const DefaultInternCap = 1 << 13

// MaxInternLen is the longest string an Interner keeps; a longer one is
// allocated on every lookup and never stored (Limits' defaults cap ids and
// zones at 64 bytes).
const MaxInternLen = 64

// Interner is a bounded table of strings keyed by their bytes, in two
// generations of at most Cap strings each. A lookup tries the current
// generation, then the previous one (a hit there is copied into the
// current one); a miss allocates the string and stores it in the current
// generation. When the current generation is full it becomes the previous
// one and the old previous one is dropped (cleared and reused as the new
// current one, so a rotation allocates nothing once both maps have grown).
// Eviction is therefore "not looked up during the last full generation":
// a string used at least once per Cap distinct insertions stays; memory is
// at most 2 x Cap strings of at most MaxInternLen bytes whatever the input
// (hostile input of distinct ids only makes every lookup a miss, which
// costs what decoding without an Interner costs, plus the map insert).
//
// Not safe for concurrent use: one per stage task (processor).
type Interner struct {
	cur, prev map[string]string
	cap       int
	rotations int
	// last is the string each field (device, vehicle, zone) got last: a
	// vehicle's events come in runs, and comparing the bytes with it is
	// cheaper than hashing them for a map lookup. Three strings more at
	// most, whatever the maps evicted.
	last [internFields]string
	// front is a direct-mapped table in front of the maps, indexed by
	// frontHash of the bytes: a hit costs a few loads and one compare
	// instead of the map's hash and probe (when a partition's records
	// do not come in runs, as in a backlog of many vehicles). A miss goes
	// to the maps and stores their answer in the slot. Every rotation
	// clears it, so it holds only strings of the current generation: the
	// bound and the eviction rule are the maps' alone.
	front [internFront]string
}

// internFront is the number of slots of Interner.front (a power of two):
// 4,096 strings, 64 KiB of string headers per table.
const (
	internFrontBits = 12
	internFront     = 1 << internFrontBits
)

// frontHash is a cheap hash of b for Interner.front: its first and last
// eight bytes (all of them when shorter) and its length, mixed by one
// multiplication; the top internFrontBits bits index the table.
func frontHash(b []byte) uint64 {
	var a, z uint64
	if len(b) >= 8 {
		a = binary.LittleEndian.Uint64(b)
		z = binary.LittleEndian.Uint64(b[len(b)-8:])
	} else {
		for _, c := range b {
			a = a<<8 | uint64(c)
		}
	}
	h := (a ^ bits.RotateLeft64(z, 29) ^ uint64(len(b))) * 0x9e3779b97f4a7c15
	return h >> (64 - internFrontBits)
}

// The fields DecodeAvroInterned interns, as indexes of Interner.last.
const (
	internDevice = iota
	internVehicle
	internZone
	internFields
)

// NewInterner returns an empty Interner of n strings per generation
// (n <= 0: DefaultInternCap).
func NewInterner(n int) *Interner {
	if n <= 0 {
		n = DefaultInternCap
	}
	return &Interner{cur: map[string]string{}, prev: map[string]string{}, cap: n}
}

// Bytes returns b as a string: the stored one when b was seen recently,
// else a new one (then stored, if at most MaxInternLen bytes).
func (t *Interner) Bytes(b []byte) string {
	if s, ok := t.cur[string(b)]; ok {
		return s
	}
	if len(b) > MaxInternLen {
		return string(b)
	}
	s, ok := t.prev[string(b)]
	if !ok {
		s = string(b)
	}
	if len(t.cur) >= t.cap {
		t.prev, t.cur = t.cur, t.prev
		clear(t.cur)
		clear(t.front[:]) // the front holds strings of cur only
		t.rotations++
	}
	t.cur[s] = s
	return s
}

// field is Bytes for one field of the event, trying the string that field
// got last first.
func (t *Interner) field(f int, b []byte) string {
	if s := t.last[f]; s == string(b) {
		return s
	}
	slot := &t.front[frontHash(b)]
	if s := *slot; s == string(b) {
		t.last[f] = s
		return s
	}
	s := t.Bytes(b)
	if len(s) <= MaxInternLen {
		*slot = s
	}
	t.last[f] = s
	return s
}

// Len is the number of strings held (both generations; a string promoted
// from the previous generation counts twice until the next rotation).
func (t *Interner) Len() int { return len(t.cur) + len(t.prev) }

// Rotations is how many times the current generation filled up.
func (t *Interner) Rotations() int { return t.rotations }

// DecodeAvroInterned is DecodeAvro (the same checks, errors and values)
// for the stages' hot path: DeviceID, VehicleID and TZ come from in, and
// EventID aliases b, without a copy. b must not be modified while the
// event's EventID is in use; the stages never modify a consumed record's
// value (pipelines' runtime gives each record its own), and use the event
// id only to hash it, compare it or encode it again within Process.
// Keep it beyond that with strings.Clone. Fault codes are allocated as by
// DecodeAvro (rare, and Normalize may rewrite them). With a nil in it is
// DecodeAvro: every string is a new one, the event id included.
func DecodeAvroInterned(b []byte, lim Limits, in *Interner) (Event, error) {
	lim = lim.Defaults()
	r := reader{b: b, in: in}
	var ev Event
	r.event(&ev, lim)
	if r.err == nil && r.i != len(r.b) {
		r.fail("", "%d bytes after the record", len(r.b)-r.i)
	}
	if r.err != nil {
		return Event{}, r.err
	}
	return ev, nil
}

// idStr is an id or zone field: interned when the reader has an Interner,
// else a new string.
func (r *reader) idStr(field string, max int, f int) string {
	if r.in == nil {
		return r.str(field, max)
	}
	b := r.strBytes(field, max)
	if len(b) == 0 {
		return ""
	}
	return r.in.field(f, b)
}

// eventID is the event_id field: aliasing the input when the reader has an
// Interner (DecodeAvroInterned), else a new string.
func (r *reader) eventID(max int) string {
	if r.in == nil {
		return r.str("event_id", max)
	}
	b := r.strBytes("event_id", max)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
