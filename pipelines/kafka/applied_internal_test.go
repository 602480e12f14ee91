package kafka

import (
	"bytes"
	"testing"
)

func TestAppliedEncoding(t *testing.T) {
	key, value := appliedKey("minecart.telemetry.clean", 7), appliedValue(1234567)
	if want := "\x00minecart.applied/minecart.telemetry.clean/7"; string(key) != want {
		t.Fatalf("key %q, want %q", key, want)
	}
	if want := []byte{0, 0, 0, 0, 0, 0x12, 0xd6, 0x87}; !bytes.Equal(value, want) {
		t.Fatalf("value % x, want % x", value, want)
	}
	for _, tc := range []struct {
		name       string
		key, value []byte
		topic      string
		p          int32
		next       int64
		ok         bool
	}{
		{"round trip", key, value, "minecart.telemetry.clean", 7, 1234567, true},
		{"zero", []byte(AppliedKeyPrefix + "a/0"), make([]byte, 8), "a", 0, 0, true},
		{"no prefix", []byte("minecart.applied/a/0"), make([]byte, 8), "", 0, 0, false},
		{"no partition", []byte(AppliedKeyPrefix + "a"), make([]byte, 8), "", 0, 0, false},
		{"empty topic", []byte(AppliedKeyPrefix + "/0"), make([]byte, 8), "", 0, 0, false},
		{"bad partition", []byte(AppliedKeyPrefix + "a/x"), make([]byte, 8), "", 0, 0, false},
		{"negative partition", []byte(AppliedKeyPrefix + "a/-1"), make([]byte, 8), "", 0, 0, false},
		{"short value", []byte(AppliedKeyPrefix + "a/0"), make([]byte, 7), "", 0, 0, false},
		{"tombstone", []byte(AppliedKeyPrefix + "a/0"), nil, "", 0, 0, false},
		{"negative offset", []byte(AppliedKeyPrefix + "a/0"), bytes.Repeat([]byte{0xff}, 8), "", 0, 0, false},
	} {
		topic, p, next, err := parseApplied(tc.key, tc.value)
		if (err == nil) != tc.ok || topic != tc.topic || p != tc.p || next != tc.next {
			t.Errorf("%s: got %q %d %d %v", tc.name, topic, p, next, err)
		}
	}
	if isApplied([]byte("key0")) || !isApplied(key) {
		t.Fatal("isApplied")
	}
}

func FuzzParseApplied(f *testing.F) {
	f.Add(appliedKey("t", 3), appliedValue(42))
	f.Add([]byte(AppliedKeyPrefix+"x/"), []byte{1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		topic, p, next, err := parseApplied(key, value)
		if err != nil {
			return
		}
		if !bytes.Equal(appliedKey(topic, p), key) && !bytes.HasPrefix(key, []byte(AppliedKeyPrefix)) {
			t.Fatalf("accepted key %q without the prefix", key)
		}
		if next < 0 || p < 0 || !bytes.Equal(appliedValue(next), value) {
			t.Fatalf("accepted %q % x as %q %d %d", key, value, topic, p, next)
		}
	})
}
