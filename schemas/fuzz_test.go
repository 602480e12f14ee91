package schemas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bytes. Invariants:
//   - it never panics and never allocates out of proportion to the input
//     (a crash or OOM fails the fuzzer);
//   - an error wraps ErrMalformed or ErrUnknownSchema (no registry here),
//     and goavro never panicked (the recover in decode is a safety net,
//     not a path this input should take);
//   - a record that decodes re-encodes under the same name, and that
//     encoding decodes and re-encodes to the same bytes (values are not
//     compared: NaN != NaN).
//
// Seeds: a valid record of every embedded schema in both framings, each cut
// short, and the hand-written cases of testdata/fuzz/FuzzDecode.
// Run: go test ./schemas -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	s := SingleObject()
	for _, name := range Names() {
		text, err := Schema(name)
		if err != nil {
			continue
		}
		native, _, err := newSample(text)
		if err != nil {
			continue
		}
		b, err := s.Encode(name, native)
		if err != nil {
			continue
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(binary.BigEndian.AppendUint32([]byte{0}, 1), b[10:]...))
	}
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, native, err := s.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownSchema) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnknownSchema", err)
			}
			if strings.Contains(err.Error(), "decoder panic") {
				t.Fatalf("goavro panicked: %v", err)
			}
			return
		}
		again, err := s.Encode(name, native)
		if err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", name, err)
		}
		name2, native2, err := s.Decode(again)
		if err != nil || name2 != name {
			t.Fatalf("re-encoded %s decodes to %s, %v", name, name2, err)
		}
		if third, err := s.Encode(name, native2); err != nil || !bytes.Equal(third, again) {
			t.Fatalf("%s: encode(decode(x)) is not stable:\n% x\n% x (%v)", name, again, third, err)
		}
	})
}
