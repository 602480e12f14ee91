package shred

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/sealbox"
)

func seq(from byte) []byte {
	k := make([]byte, pseudonym.KeySize)
	for i := range k {
		k[i] = from + byte(i)
	}
	return k
}

func opening(key []byte, k pseudonym.Kind, id string) pseudonym.Opening {
	return pseudonym.Opening{Pseudonym: pseudonym.Of(key, k, id), Kind: k, ID: id, Key: key}
}

// TestWorkedExample is docs/privacy.md's worked example, recomputed with
// crypto/hmac and crypto/cipher as an independent reader would.
func TestWorkedExample(t *testing.T) {
	o := opening(seq(0), pseudonym.Vehicle, "WVWZZZ1JZXW000001")
	inner := []byte("score of WVWZZZ1JZXW000001")
	var nonce [sealbox.NonceLen]byte
	for i := range nonce {
		nonce[i] = 0xa0 + byte(i)
	}
	s, err := SealNonce(o, "minecart.scores", inner, nonce)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, o.Key)
	m.Write([]byte("minecart/shred-key/v1"))
	key := m.Sum(nil)
	if !bytes.Equal(key, Key(o.Key)) {
		t.Fatalf("shred key %x, independent %x", Key(o.Key), key)
	}
	id := sha256.Sum256(append([]byte("minecart-shred-key-id\x00"), key...))
	blk, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(blk)
	aad := []byte("minecart/shred/v1\x00minecart.scores\x00" + o.Pseudonym)
	want := append(append(append([]byte("MCS1"), id[:8]...), nonce[:]...), gcm.Seal(nil, nonce[:], inner, aad)...)
	if !bytes.Equal(s.Sealed, want) {
		t.Fatalf("sealed\n%x\nindependent\n%x", s.Sealed, want)
	}
	if s.Pseudonym != "p1:57fab9b22d6e0a9dd925d3142f46189d" || s.Kind != avro.SealedKind("vehicle") {
		t.Fatalf("envelope %+v", s)
	}
	t.Logf("shred key %x\nsealed %x", key, s.Sealed)
	if got := hex.EncodeToString(key); got != docKey {
		t.Errorf("shred key %s, docs/privacy.md says %s", got, docKey)
	}
	if got := hex.EncodeToString(s.Sealed); got != docSealed {
		t.Errorf("sealed %s, docs/privacy.md says %s", got, docSealed)
	}
	back, err := Open(o, "minecart.scores", o.Pseudonym, s)
	if err != nil || !bytes.Equal(back, inner) {
		t.Fatalf("open: %q %v", back, err)
	}
	doc, err := os.ReadFile("../../docs/privacy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{docKey, docSealed[:72], docSealed[72:], o.Pseudonym} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("docs/privacy.md does not print %s", want)
		}
	}
}

// The worked example's bytes (docs/privacy.md prints them).
const (
	docKey    = "eb4b750d132ac874698a5d616ae1654fed11cfb34bb9f4f72d86be3fd879846f"
	docSealed = "4d4353317ebe69993905c329a0a1a2a3a4a5a6a7a8a9aaab57b7fdf25c79590209f07de8ffcfcf0499ad3e14e4f603d832661b761c8a4ef4153578f3266672d07ce4"
)

// TestOpenRefuses: a sealed value opens only under its identity's key, on
// its topic, under its own pseudonym; any flipped byte fails.
func TestOpenRefuses(t *testing.T) {
	o := opening(seq(0), pseudonym.Vehicle, "V1")
	other := opening(seq(1), pseudonym.Vehicle, "V2")
	s, err := Seal(o, "minecart.scores", []byte("inner"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Sealed, []byte("inner")) || bytes.Contains(s.Sealed, []byte("V1")) {
		t.Fatal("clear bytes in the sealed value")
	}
	moved := *s
	moved.Pseudonym = other.Pseudonym
	for name, c := range map[string]struct {
		o     pseudonym.Opening
		topic string
		key   string
		s     *avro.Sealed
	}{
		"other key":             {other, "minecart.scores", o.Pseudonym, s},
		"other topic":           {o, "minecart.ledger.requests", o.Pseudonym, s},
		"under another pseudo":  {other, "minecart.scores", other.Pseudonym, &moved},
		"record key mismatch":   {o, "minecart.scores", other.Pseudonym, s},
		"kind mismatch":         {opening(seq(0), pseudonym.Account, "V1"), "minecart.scores", o.Pseudonym, s},
		"empty":                 {o, "minecart.scores", o.Pseudonym, &avro.Sealed{Pseudonym: o.Pseudonym, Kind: "vehicle"}},
		"the pseudonyms' magic": {o, "minecart.scores", o.Pseudonym, &avro.Sealed{Pseudonym: o.Pseudonym, Kind: "vehicle", Sealed: append([]byte("MCP1"), s.Sealed[4:]...)}},
	} {
		if _, err := Open(c.o, c.topic, c.key, c.s); !errors.Is(err, ErrBad) {
			t.Errorf("%s: opened (%v)", name, err)
		}
	}
	for i := range s.Sealed {
		bad := *s
		bad.Sealed = bytes.Clone(s.Sealed)
		bad.Sealed[i] ^= 0x40
		if _, err := Open(o, "minecart.scores", o.Pseudonym, &bad); !errors.Is(err, ErrBad) {
			t.Fatalf("byte %d flipped: opened (%v)", i, err)
		}
	}
}

// keys is a followed pseudonyms topic in memory: the committed records
// (what CatchUp and Sync read), the open transaction's (what only Sync
// would wait for), and counters.
type keys struct {
	dir               *pseudonym.Directory
	committed         []pseudonym.Opening
	tombstones        []string
	catchUps, syncs   int
	read              int // committed records applied
	readTombs         int
	failSync, failAll error
}

func newKeys() *keys { return &keys{dir: pseudonym.NewDirectory()} }

func (k *keys) Directory() *pseudonym.Directory { return k.dir }
func (k *keys) apply() {
	for ; k.read < len(k.committed); k.read++ {
		k.dir.Put(k.committed[k.read])
	}
	for ; k.readTombs < len(k.tombstones); k.readTombs++ {
		k.dir.Delete(k.tombstones[k.readTombs])
	}
}
func (k *keys) CatchUp(context.Context) error {
	k.catchUps++
	if k.failAll != nil {
		return k.failAll
	}
	k.apply()
	return nil
}
func (k *keys) Sync(context.Context) error {
	k.syncs++
	if k.failSync != nil {
		return k.failSync
	}
	k.apply()
	return nil
}

// TestWriterAndReader: the writer makes a key once (its record to emit),
// reuses it while the follower has not read it back, uses the topic's
// once read, makes a new one after an erasure; the reader opens, skips
// what is shredded, and never waits when told not to.
func TestWriterAndReader(t *testing.T) {
	ctx := context.Background()
	sk, _ := pseudonym.GenerateSealKey()
	ks := newKeys()
	src := pseudonym.Derived("test-seed")
	w := NewWriter(&Keyring{Keys: ks, Source: src, Seal: sk, Now: func() time.Time { return time.UnixMilli(1) }})
	serde := schemas.SingleObject()
	inner, err := serde.Marshal(&avro.Watermark{Task: 1, Tasks: 8, ClosedThroughMs: time.UnixMilli(5).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	s1, rec, err := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, "V1", inner)
	if err != nil || rec == nil {
		t.Fatalf("first seal: %v %v", rec, err)
	}
	if ks.catchUps != 1 || ks.syncs != 0 {
		t.Fatalf("catch-ups %d syncs %d: the writer must never wait (Sync)", ks.catchUps, ks.syncs)
	}
	o, err := sk.OpenRecord(rec.Pseudonym, rec)
	if err != nil || o.ID != "V1" || !bytes.Equal(o.Key, src.NewKey(pseudonym.Vehicle, "V1")) {
		t.Fatalf("key record: %+v %v", o, err)
	}
	// Same transaction, and the next one before the follower read it: the same key, no second record.
	if s, rec2, err := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, "V1", inner); err != nil || rec2 != nil || s.Pseudonym != s1.Pseudonym {
		t.Fatalf("second seal: %v %v", rec2, err)
	}
	w.EndTransaction()
	if _, rec2, _ := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, "V1", inner); rec2 != nil || len(w.fresh) != 1 {
		t.Fatal("a second key before the follower read the first")
	}
	// The transaction committed; the follower reads it.
	ks.committed = append(ks.committed, o)
	ks.apply()
	w.EndTransaction()
	if len(w.fresh) != 0 {
		t.Fatal("a key read back is still kept by the writer")
	}
	rd := &Reader{Keys: ks, Serde: serde}
	v1, err := serde.Marshal(s1)
	if err != nil {
		t.Fatal(err)
	}
	got, clear, sealed, err := rd.Unseal(ctx, "minecart.scores", []byte(s1.Pseudonym), v1)
	if err != nil || !sealed || got.ID != "V1" || !bytes.Equal(clear, inner) {
		t.Fatalf("unseal: %+v %v %v", got, sealed, err)
	}
	// Not sealed: passed through.
	if got, v, sealed, err := rd.Unseal(ctx, "minecart.scores", []byte("wm/1"), inner); err != nil || sealed || got.ID != "wm/1" || !bytes.Equal(v, inner) {
		t.Fatalf("clear record: %v %v", sealed, err)
	}
	// Malformed: bad, not shredded.
	for name, v := range map[string][]byte{
		"undecodable": append(bytes.Clone(v1[:12]), 0xff),
		"other key":   v1,
	} {
		key := s1.Pseudonym
		if name == "other key" {
			key = pseudonym.Of(seq(3), pseudonym.Vehicle, "x")
		}
		if _, _, _, err := rd.Unseal(ctx, "minecart.scores", []byte(key), v); !errors.Is(err, ErrBad) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The erasure: a tombstone. The record is shredded, for the reader at once.
	ks.tombstones = append(ks.tombstones, s1.Pseudonym)
	ks.apply()
	syncs := ks.syncs
	if _, _, _, err := rd.Unseal(ctx, "minecart.scores", []byte(s1.Pseudonym), v1); !errors.Is(err, ErrShredded) || !errors.Is(err, pseudonym.ErrUnknown) {
		t.Fatalf("erased: %v", err)
	}
	if ks.syncs != syncs {
		t.Fatal("a tombstoned key made the reader wait")
	}
	// A reader starting after compaction dropped both: unknown, shredded after a Sync.
	fresh := &keys{dir: pseudonym.NewDirectory()}
	if _, _, _, err := (&Reader{Keys: fresh, Serde: serde}).Unseal(ctx, "minecart.scores", []byte(s1.Pseudonym), v1); !errors.Is(err, ErrShredded) || fresh.syncs != 1 {
		t.Fatalf("compacted away: %v after %d syncs", err, fresh.syncs)
	}
	// A reader that may not wait: not yet, never shredded.
	if _, _, _, err := (&Reader{Keys: newKeys(), Serde: serde, MayWait: func() bool { return false }}).Unseal(ctx, "minecart.scores", []byte(s1.Pseudonym), v1); !errors.Is(err, ErrNotYet) || errors.Is(err, ErrShredded) {
		t.Fatalf("may not wait: %v", err)
	}
	// Reading the topic fails: transient, neither bad nor shredded.
	broken := newKeys()
	broken.failAll = errors.New("broker down")
	if _, _, _, err := (&Reader{Keys: broken, Serde: serde}).Unseal(ctx, "minecart.scores", []byte(s1.Pseudonym), v1); err == nil || errors.Is(err, ErrShredded) || errors.Is(err, ErrBad) {
		t.Fatalf("broker down: %v", err)
	}
	// The writer sees the erasure: a new key (under the derived source, the same pseudonym again), and a new record.
	w.EndTransaction()
	if _, rec3, err := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, "V1", inner); err != nil || rec3 == nil {
		t.Fatalf("after the erasure: %v %v", rec3, err)
	}
	// A key made elsewhere (the ledger) and committed is found by the catch-up, not made again.
	other := opening(Random(), pseudonym.Vehicle, "V2")
	ks.committed = append(ks.committed, other)
	w.EndTransaction()
	if s, rec4, err := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, "V2", inner); err != nil || rec4 != nil || s.Pseudonym != other.Pseudonym {
		t.Fatalf("a key of the ledger: %v %v", rec4, err)
	}
}

// Random is a random pseudonym key.
func Random() []byte { return pseudonym.Random{}.NewKey(pseudonym.Vehicle, "") }

func FuzzUnseal(f *testing.F) {
	ctx := context.Background()
	serde := schemas.SingleObject()
	o := opening(seq(0), pseudonym.Vehicle, "V1")
	s, _ := Seal(o, "minecart.scores", []byte("inner"))
	v, _ := serde.Marshal(s)
	f.Add(v)
	f.Add([]byte{0xc3, 0x01})
	ks := newKeys()
	ks.committed = []pseudonym.Opening{o}
	ks.apply()
	rd := &Reader{Keys: ks, Serde: serde}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, inner, sealed, err := rd.Unseal(ctx, "minecart.scores", []byte(o.Pseudonym), b)
		if err == nil && sealed && (got.ID != "V1" || !bytes.Equal(inner, []byte("inner"))) {
			t.Fatalf("opened to %q %q", got.ID, inner)
		}
	})
}
