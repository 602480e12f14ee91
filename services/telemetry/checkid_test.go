package telemetry

import (
	"strings"
	"testing"
)

// plainASCIIBytes is plainASCII's definition, one byte at a time.
func plainASCIIBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// TestPlainASCII: the word-at-a-time check agrees with the byte loop for
// every byte value at every position of strings of 0 to 24 bytes (one
// bad byte among printable ones, and the byte next to its neighbours'
// extremes, where a borrow could hide it).
func TestPlainASCII(t *testing.T) {
	for n := 0; n <= 24; n++ {
		for _, fill := range []byte{0x20, 0x41, 0x7e} {
			base := strings.Repeat(string(fill), n)
			if !plainASCII(base) {
				t.Fatalf("%q: not plain", base)
			}
			for i := 0; i < n; i++ {
				for c := 0; c < 256; c++ {
					b := []byte(base)
					b[i] = byte(c)
					if i > 0 {
						b[i-1] = 0x20 // the lowest printable byte below it
					}
					s := string(b)
					if got, want := plainASCII(s), plainASCIIBytes(s); got != want {
						t.Fatalf("%q: plainASCII %v, byte loop %v", s, got, want)
					}
				}
			}
		}
	}
}

// FuzzPlainASCII: the same on any input, and checkID's verdict is the
// byte loop's (a control character is refused, valid UTF-8 accepted).
func FuzzPlainASCII(f *testing.F) {
	f.Add("veh-0001")
	f.Add("Asia/Shanghai\x7f")
	f.Add("évènement-0123456789")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plainASCII(s), plainASCIIBytes(s); got != want {
			t.Fatalf("%q: plainASCII %v, byte loop %v", s, got, want)
		}
		if plainASCIIBytes(s) && len(s) <= 64 && checkID("x", s, 64) != nil {
			t.Fatalf("%q: plain ASCII refused", s)
		}
	})
}
