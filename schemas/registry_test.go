package schemas

import (
	"github.com/minecart/minecart/schemas/avro"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
)

// fakeRegistry is an in-memory Registry (schemas/registry tests the real
// HTTP client against franz-go's srfake) that counts the schema-by-id
// lookups it serves and can be made to fail them or registrations.
type fakeRegistry struct {
	mu           sync.Mutex
	ids          map[string]int // subject + "\x00" + text -> id
	texts        map[uint32]string
	byIDRequests atomic.Int32
	down         atomic.Bool
	refuse       atomic.Bool // Register fails as an incompatible schema
}

func newFakeRegistry(*testing.T) *fakeRegistry {
	return &fakeRegistry{ids: map[string]int{}, texts: map[uint32]string{}}
}

func (f *fakeRegistry) Register(_ context.Context, subject, text string) (int, error) {
	if f.refuse.Load() {
		return 0, errors.New("409: Schema being registered is incompatible with an earlier schema")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.ids[subject+"\x00"+text]; ok {
		return id, nil
	}
	id := len(f.texts) + 1
	f.ids[subject+"\x00"+text] = id
	f.texts[uint32(id)] = text
	return id, nil
}

func (f *fakeRegistry) Schema(_ context.Context, id uint32) (string, error) {
	f.byIDRequests.Add(1)
	if f.down.Load() {
		return "", errors.New("503: registry down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	text, ok := f.texts[id]
	if !ok {
		return "", fmt.Errorf("%w: not in the registry", ErrUnknownSchema)
	}
	return text, nil
}

func TestRegistrySerde(t *testing.T) {
	reg := newFakeRegistry(t)
	s, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Every embedded schema is registered under its full record name.
	for _, name := range Names() {
		text, _ := Schema(name)
		if id, ok := reg.ids[name+"\x00"+text]; !ok || id != int(s.reg.ids[name]) {
			t.Errorf("subject %s: id %d (serde has %d), registered %v", name, id, s.reg.ids[name], ok)
		}
	}

	b, err := s.Encode(DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	id := s.reg.ids[DeadLetter]
	if b[0] != 0 || binary.BigEndian.Uint32(b[1:5]) != id {
		t.Errorf("header % x, want 00 + %d big-endian", b[:5], id)
	}
	single, _ := SingleObject().Encode(DeadLetter, deadLetterNative())
	if !bytes.Equal(b[5:], single[10:]) {
		t.Errorf("bodies differ between framings")
	}
	for _, in := range [][]byte{b, single} { // Decode reads both framings
		name, native, err := s.Decode(in)
		if err != nil || name != DeadLetter || native["stage"] != "ingest" {
			t.Errorf("Decode(% x...) = %s, %v, %v", in[:5], name, native, err)
		}
	}
	if reg.byIDRequests.Load() != 0 {
		t.Errorf("%d registry lookups for ids the serde registered itself", reg.byIDRequests.Load())
	}

	// A second process (another Serde on the same registry) gets the same
	// ids and decodes the first one's records.
	s2, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if !maps(s.reg.ids, s2.reg.ids) {
		t.Errorf("ids differ between two registrations: %v / %v", s.reg.ids, s2.reg.ids)
	}
	if _, err := s2.DecodeAs(DeadLetter, b); err != nil {
		t.Error(err)
	}
}

func maps(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRegistryWriterSchema: a record written by another producer with a
// newer version of a schema (an id this process never registered) is
// resolved through the registry once, cached, and decoded with the
// writer's schema.
func TestRegistryWriterSchema(t *testing.T) {
	reg := newFakeRegistry(t)
	s, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := Schema(DeadLetter)
	newer := strings.Replace(text, `"fields": [`, `"fields": [{"name": "attempts", "type": "int", "default": 0},`, 1)
	id, err := reg.Register(t.Context(), DeadLetter, newer)
	if err != nil {
		t.Fatal(err)
	}
	if uint32(id) == s.reg.ids[DeadLetter] {
		t.Fatal("the newer schema got the old id")
	}
	cat := loadCatalog(fstestFS("DeadLetter.avsc", newer))
	e := cat.byName[DeadLetter]
	if e.err != nil {
		t.Fatal(e.err)
	}
	native := deadLetterNative()
	native["attempts"] = int32(4)
	b := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	b, err = e.codec.BinaryFromNative(b, native)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		name, got, err := s.Decode(b)
		if err != nil || name != DeadLetter || got["attempts"] != int32(4) || got["stage"] != "ingest" {
			t.Fatalf("Decode = %s, %v, %v", name, got, err)
		}
	}
	// Typed, the writer's record is resolved to the embedded schema: the
	// field this process does not know is dropped.
	var dl avro.DeadLetter
	if err := s.Unmarshal(b, &dl); err != nil || dl.Stage != "ingest" || dl.ReasonCode != native["reason_code"] {
		t.Fatalf("Unmarshal = %+v, %v", dl, err)
	}
	if n := reg.byIDRequests.Load(); n != 1 {
		t.Errorf("%d registry lookups for one new id, want 1 (cached)", n)
	}
}

// TestRegistryUnknownID: an id the registry does not know is ErrUnknownSchema,
// remembered for MissTTL (by the injected clock), then asked again.
func TestRegistryUnknownID(t *testing.T) {
	reg := newFakeRegistry(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano())
	s, err := NewSerde(t.Context(), SerdeConfig{
		Registry: reg,
		MissTTL:  time.Minute,
		Now:      func() time.Time { return time.Unix(0, now.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	bogus := []byte{0, 0, 0, 0x30, 0x39, 2, 'x'} // id 12345
	for range 5 {
		_, _, err := s.Decode(bogus)
		if !errors.Is(err, ErrUnknownSchema) || !strings.Contains(err.Error(), "id 12345") {
			t.Fatalf("Decode of an unknown id: %v", err)
		}
	}
	if n := reg.byIDRequests.Load(); n != 1 {
		t.Errorf("%d lookups within MissTTL, want 1", n)
	}
	now.Add(int64(time.Minute))
	if _, _, err := s.Decode(bogus); !errors.Is(err, ErrUnknownSchema) {
		t.Fatal(err)
	}
	if n := reg.byIDRequests.Load(); n != 2 {
		t.Errorf("%d lookups after MissTTL, want 2", n)
	}
}

// TestRegistryDown: when the registry cannot answer, Decode fails with an
// error that is neither ErrUnknownSchema nor ErrMalformed (transient: retry,
// don't dead-letter), nothing is cached, and the next Decode asks again.
func TestRegistryDown(t *testing.T) {
	reg := newFakeRegistry(t)
	s, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := Schema(DeadLetter)
	other := strings.Replace(text, `"fields": [`, `"fields": [{"name": "n", "type": "int", "default": 0},`, 1)
	id, err := reg.Register(t.Context(), DeadLetter, other)
	if err != nil {
		t.Fatal(err)
	}
	b := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), make([]byte, 64)...)
	reg.down.Store(true)
	_, _, err = s.Decode(b)
	if err == nil || errors.Is(err, ErrUnknownSchema) || errors.Is(err, ErrMalformed) {
		t.Fatalf("Decode with the registry down: %v, want a transient error", err)
	}
	reg.down.Store(false)
	if _, _, err := s.Decode(b); !errors.Is(err, ErrMalformed) { // zeros are not a valid record of it
		t.Fatalf("Decode after the registry is back: %v", err)
	}
	if n := reg.byIDRequests.Load(); n != 2 {
		t.Errorf("%d lookups, want 2 (a failed lookup is not cached)", n)
	}
}

// TestRegistryConcurrentLookup: many goroutines decoding records of a new id
// at once share one registry request.
func TestRegistryConcurrentLookup(t *testing.T) {
	reg := newFakeRegistry(t)
	s, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := Schema(DeadLetter)
	other := strings.Replace(text, `"fields": [`, `"fields": [{"name": "n", "type": "int", "default": 0},`, 1)
	id, err := reg.Register(t.Context(), DeadLetter, other)
	if err != nil {
		t.Fatal(err)
	}
	e := loadCatalog(fstestFS("DeadLetter.avsc", other)).byName[DeadLetter]
	native := deadLetterNative()
	native["n"] = int32(9)
	b, err := e.codec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), native)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if got, err := s.DecodeAs(DeadLetter, b); err != nil || got["n"] != int32(9) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent decode: %v", err)
	}
	if n := reg.byIDRequests.Load(); n != 1 {
		t.Errorf("%d lookups for one id from 16 goroutines, want 1", n)
	}
}

func TestRegistryRejects(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.refuse.Store(true)
	_, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err == nil || !strings.Contains(err.Error(), "incompatible") || !strings.Contains(err.Error(), "register minecart.") {
		t.Errorf("NewSerde with a registry that rejects: %v", err)
	}
}

func fstestFS(file, text string) fstest.MapFS {
	return fstest.MapFS{file: {Data: []byte(text)}}
}

// TestRegistryMissesBounded: records with ever new unknown ids do not grow
// the id cache without end.
func TestRegistryMissesBounded(t *testing.T) {
	reg := newFakeRegistry(t)
	s, err := NewSerde(t.Context(), SerdeConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.reg.maxMisses = 20
	for id := range uint32(100) {
		b := binary.BigEndian.AppendUint32([]byte{0}, 1_000_000+id)
		if _, _, err := s.Decode(b); !errors.Is(err, ErrUnknownSchema) {
			t.Fatal(err)
		}
	}
	s.reg.mu.Lock()
	n := len(s.reg.byID)
	s.reg.mu.Unlock()
	if limit := 20; n > limit {
		t.Errorf("%d ids cached after 100 unknown ones, want at most %d", n, limit)
	}
	if _, err := s.DecodeAs(DeadLetter, mustEncode(t, s)); err != nil {
		t.Errorf("a known id after the sweep: %v", err)
	}
}

func mustEncode(t *testing.T, s *Serde) []byte {
	t.Helper()
	b, err := s.Encode(DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
