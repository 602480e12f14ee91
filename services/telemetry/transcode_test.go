package telemetry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
)

var testHeader = []byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}

// transcodeReference is what TranscodeAvroBatch must equal: the batch
// decoded (DecodeAvroBatch), each event stamped where it leaves device,
// vehicle or zone empty, the first event for another device or vehicle
// reported, and every event re-encoded with AppendAvro after header.
func transcodeReference(b []byte, lim Limits, st Stamp) ([]byte, []int, *Mismatch, error) {
	evs, err := DecodeAvroBatch(b, lim)
	if err != nil {
		return nil, nil, nil, err
	}
	var out []byte
	var ends []int
	var mis *Mismatch
	for i := range evs {
		ev := &evs[i]
		if ev.DeviceID == "" {
			ev.DeviceID = st.DeviceID
		}
		if ev.VehicleID == "" {
			ev.VehicleID = st.VehicleID
		}
		if ev.TZ == "" {
			ev.TZ = st.TZ
		}
		if mis == nil && (ev.DeviceID != st.DeviceID || ev.VehicleID != st.VehicleID) {
			mis = &Mismatch{Index: i, DeviceID: ev.DeviceID, VehicleID: ev.VehicleID}
		}
		out = append(out, testHeader...)
		out = AppendAvro(out, ev)
		ends = append(ends, len(out))
	}
	return out, ends, mis, nil
}

// checkTranscode runs TranscodeAvroBatch on b after a prefix already in
// dst and compares it with the reference: same bytes and ends, same
// mismatch, or the same error (message, code and index).
func checkTranscode(t *testing.T, b []byte, lim Limits, st Stamp) (*Mismatch, error) {
	t.Helper()
	prefix := []byte("prefix")
	dst, ends, mis, err := TranscodeAvroBatch(bytes.Clone(prefix), []int{len(prefix)}, testHeader, b, lim, st)
	rout, rends, rmis, rerr := transcodeReference(b, lim, st)
	if (err == nil) != (rerr == nil) || err != nil && err.Error() != rerr.Error() {
		t.Fatalf("error %v, reference %v", err, rerr)
	}
	if err != nil {
		var ie, rie *IndexError
		if errors.As(err, &ie) != errors.As(rerr, &rie) || ie != nil && ie.Index != rie.Index || CodeOf(err) != CodeOf(rerr) {
			t.Fatalf("error %#v, reference %#v", err, rerr)
		}
		if !bytes.Equal(dst, prefix) || !reflect.DeepEqual(ends, []int{len(prefix)}) {
			t.Fatalf("on error dst %q ends %v not restored", dst, ends)
		}
		return nil, err
	}
	if !bytes.Equal(dst[len(prefix):], rout) {
		t.Fatalf("bytes differ:\n%x\n%x", dst[len(prefix):], rout)
	}
	for i := range rends {
		rends[i] += len(prefix)
	}
	if !reflect.DeepEqual(ends[1:], rends) {
		t.Fatalf("ends %v, reference %v", ends[1:], rends)
	}
	if !reflect.DeepEqual(mis, rmis) {
		t.Fatalf("mismatch %+v, reference %+v", mis, rmis)
	}
	return mis, nil
}

func TestTranscodeAvroBatch(t *testing.T) {
	st := Stamp{DeviceID: "dev-1", VehicleID: "veh-1", TZ: "Europe/Berlin"}
	blank := sample(1)
	blank.DeviceID, blank.VehicleID, blank.TZ, blank.FaultCodes = "", "", "", nil
	other := sample(3)
	other.VehicleID = "veh-2"
	otherDev := sample(4)
	otherDev.DeviceID = "dev-2"
	nan := sample(5)
	nan.Lat = math.Float64frombits(0x7ff8_0000_dead_beef) // a NaN payload travels unchanged
	ctl := sample(6)
	ctl.EventID = "e\x01"
	long := sample(7)
	long.EventID = string(make([]byte, 65))
	noID := sample(8)
	noID.EventID = ""
	badUTF := sample(9)
	badUTF.TZ = "\xff"

	// A batch in two blocks, the second with its byte size (negative
	// count), and an event whose fault codes come in two blocks with
	// overlong varints: all of it valid Avro that the output canonicalises.
	var multi []byte
	multi = binary.AppendVarint(multi, 1)
	multi = AppendAvro(multi, ptr(sample(1)))
	ev2 := AppendAvro(nil, ptr(blank))
	multi = binary.AppendVarint(multi, -1)
	multi = binary.AppendVarint(multi, int64(len(ev2)))
	multi = append(multi, ev2...)
	multi = append(multi, 0)
	var codes []byte // blank's encoding up to its fault codes, then 2 blocks of codes
	codes = append(codes, ev2[:len(ev2)-1]...)
	codes = append(codes, 0x82, 0x00)                     // count 1 as an overlong varint
	codes = appendString(codes, "P0301")                  //
	codes = binary.AppendVarint(codes, -2)                // a block of 2 with its size
	codes = binary.AppendVarint(codes, 12)                //
	codes = appendString(appendString(codes, "P1"), "P2") //
	codes = append(codes, 0)
	multiCodes := append(append(binary.AppendVarint(nil, 1), codes...), 0)

	for _, tc := range []struct {
		name    string
		body    []byte
		lim     Limits
		wantMis int // -1: none
		wantErr string
	}{
		{"stamped and kept", AppendAvroBatch(nil, []Event{sample(1), blank, sample(2)}), Limits{}, -1, ""},
		{"other vehicle", AppendAvroBatch(nil, []Event{sample(1), sample(2), other, otherDev}), Limits{}, 2, ""},
		{"other device", AppendAvroBatch(nil, []Event{otherDev, other}), Limits{}, 0, ""},
		{"mismatch then decode error: the error wins", append(AppendAvroBatch(nil, []Event{other}), 7), Limits{}, 0, CodeDecode},
		{"nan payload", AppendAvroBatch(nil, []Event{nan}), Limits{}, -1, ""},
		{"control character", AppendAvroBatch(nil, []Event{sample(1), ctl}), Limits{}, 0, CodeBadID},
		{"long id", AppendAvroBatch(nil, []Event{long}), Limits{}, 0, CodeFieldTooLong},
		{"no event id", AppendAvroBatch(nil, []Event{noID}), Limits{}, 0, CodeMissingField},
		{"bad utf-8", AppendAvroBatch(nil, []Event{badUTF}), Limits{}, 0, CodeBadID},
		{"too many", AppendAvroBatch(nil, []Event{sample(1), sample(2), sample(3)}), Limits{MaxEvents: 2}, 0, CodeTooManyEvents},
		{"too many codes", AppendAvroBatch(nil, []Event{{EventID: "x", FaultCodes: []string{"a", "b", "c"}}}), Limits{MaxFaultCodes: 2}, 0, CodeFieldTooLong},
		{"empty", []byte{0}, Limits{}, 0, CodeEmptyBatch},
		{"nothing", nil, Limits{}, 0, CodeDecode},
		{"truncated", AppendAvroBatch(nil, []Event{sample(1)})[:40], Limits{}, 0, CodeDecode},
		{"bad boolean", func() []byte {
			b := AppendAvroBatch(nil, []Event{blank})
			enc := AppendAvro(nil, &blank)
			b[1+len(enc)-1-3*8-1] = 2 // count, then the event: engine_on before 3 doubles and the empty fault codes
			return b
		}(), Limits{}, 0, CodeDecode},
		{"blocks and overlong varints", multi, Limits{}, -1, ""},
		{"fault codes in blocks", multiCodes, Limits{}, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mis, err := checkTranscode(t, tc.body, tc.lim, st)
			switch {
			case tc.wantErr != "":
				if err == nil || CodeOf(err) != tc.wantErr {
					t.Fatalf("error %v, want code %s", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantMis < 0 && mis != nil:
				t.Fatalf("mismatch %+v", mis)
			case tc.wantMis >= 0 && (mis == nil || mis.Index != tc.wantMis):
				t.Fatalf("mismatch %+v, want index %d", mis, tc.wantMis)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestTranscodeAvroBatchAllocs: no allocation per event (the output
// buffers reused, as the gateway pools them).
func TestTranscodeAvroBatchAllocs(t *testing.T) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sample(uint64(i))
		evs[i].DeviceID, evs[i].VehicleID, evs[i].TZ = "", "", ""
	}
	body := AppendAvroBatch(nil, evs)
	st := Stamp{DeviceID: "dev-1", VehicleID: "veh-1", TZ: "Europe/Berlin"}
	dst, ends := make([]byte, 0, 64<<10), make([]int, 0, 128)
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		if dst, ends, _, err = TranscodeAvroBatch(dst[:0], ends[:0], testHeader, body, Limits{}, st); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("%v allocations for 100 events", allocs)
	}
}

// FuzzTranscodeAvroBatch: for any body, TranscodeAvroBatch equals the
// decode, stamp and re-encode it replaces, byte for byte, error for error.
func FuzzTranscodeAvroBatch(f *testing.F) {
	other := sample(2)
	other.VehicleID = "veh-2"
	blank := sample(3)
	blank.DeviceID, blank.VehicleID, blank.TZ = "", "", ""
	f.Add(AppendAvroBatch(nil, []Event{sample(1), other, blank}))
	f.Add([]byte{0})
	f.Add([]byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Add([]byte{0x01, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkTranscode(t, b, Limits{MaxEvents: 100, MaxFaultCodes: 4}, Stamp{DeviceID: "dev-1", VehicleID: "veh-1", TZ: "UTC"})
	})
}

// BenchmarkTranscodeAvroBatch: a batch of 100 events into pooled buffers,
// against the decode, stamp and re-encode it replaces.
func BenchmarkTranscodeAvroBatch(b *testing.B) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sample(uint64(i))
		evs[i].DeviceID, evs[i].VehicleID, evs[i].TZ, evs[i].FaultCodes = "", "", "", nil
	}
	body := AppendAvroBatch(nil, evs)
	st := Stamp{DeviceID: "d001", VehicleID: "v001", TZ: "Europe/Berlin"}
	b.Run("transcode", func(b *testing.B) {
		var dst []byte
		var ends []int
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var err error
			if dst, ends, _, err = TranscodeAvroBatch(dst[:0], ends[:0], testHeader, body, Limits{}, st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode_encode", func(b *testing.B) {
		var dst []byte
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			out, err := DecodeAvroBatch(body, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			dst = dst[:0]
			for i := range out {
				ev := &out[i]
				ev.DeviceID, ev.VehicleID, ev.TZ = st.DeviceID, st.VehicleID, st.TZ
				dst = append(dst, testHeader...)
				dst = AppendAvro(dst, ev)
			}
		}
	})
}
