package telemetry

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// TestExactFloat: where the fast path answers, it is ParseFloat's value,
// bit for bit (the sign of zero too); tokens it leaves are ParseFloat's.
func TestExactFloat(t *testing.T) {
	toks := []string{"0", "-0", "0.0", "-0.0", "52.5", "-13.4012", "1", "123456789012345", "0.000000000000001",
		"999999999999999", "1234567890123456", "1e5", "1.5E-3", "90.00000000000001", "0.1", "0.3", "2.675"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		v := (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(12)))
		toks = append(toks, strconv.FormatFloat(v, 'f', r.IntN(12), 64), strconv.FormatFloat(v, 'f', -1, 64))
	}
	fast := 0
	for _, tok := range toks {
		want, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := exactFloat([]byte(tok))
		if !ok {
			continue
		}
		fast++
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v (%x), ParseFloat %v (%x)", tok, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
	if fast < len(toks)/4 {
		t.Fatalf("fast path took %d of %d tokens", fast, len(toks))
	}
}

func FuzzExactFloat(f *testing.F) {
	f.Add(uint64(525), uint8(1), false)
	f.Fuzz(func(t *testing.T, m uint64, frac uint8, neg bool) {
		s := strconv.FormatUint(m, 10)
		if int(frac) < len(s) && frac > 0 {
			s = s[:len(s)-int(frac)] + "." + s[len(s)-int(frac):]
		}
		if neg {
			s = "-" + s
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return
		}
		if got, ok := exactFloat([]byte(s)); ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v, ParseFloat %v", s, got, want)
		}
	})
}

// TestDecodeJSONInto: decoding into a reused slice gives what DecodeJSON
// gives, nothing left over from the batch decoded into it before.
func TestDecodeJSONInto(t *testing.T) {
	big := []Event{sample(1), sample(2), sample(3)}
	small := sample(4)
	small.DeviceID, small.VehicleID, small.TZ, small.FaultCodes = "", "", "", nil
	bigBody, _ := EncodeJSON(big)
	smallBody, _ := EncodeJSON([]Event{small})
	buf, err := DecodeJSONInto(nil, bigBody, Limits{})
	if err != nil || !reflect.DeepEqual(buf, big) {
		t.Fatalf("%v %+v", err, buf)
	}
	got, err := DecodeJSONInto(buf, smallBody, Limits{})
	want, _ := DecodeJSON(smallBody, Limits{})
	if err != nil || !reflect.DeepEqual(got, want) || &got[0] != &buf[0] {
		t.Fatalf("%v\n%+v\n%+v", err, got, want)
	}
	if _, err := DecodeJSONInto(buf, []byte(`{"events":[],"events":[]}`), Limits{}); err == nil {
		t.Fatal("duplicate events field accepted")
	}
	if _, err := DecodeJSONInto(buf, []byte(`{"events":null}`), Limits{}); CodeOf(err) != CodeEmptyBatch {
		t.Fatalf("null events: %v", err)
	}
}
