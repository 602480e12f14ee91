package chaos

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// TestIsMarkCheckpoint: the counts leave out the ledger's checkpoint
// records among the entries (their number depends on how the run was cut
// into publications) and the gateway's marks, never an entry.
func TestIsMarkCheckpoint(t *testing.T) {
	hdrs := func(hs []pipelines.Header) (out []kgo.RecordHeader) {
		for _, h := range hs {
			out = append(out, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		return out
	}
	for _, c := range []struct {
		name string
		r    *kgo.Record
		want bool
	}{
		{"checkpoint", &kgo.Record{Key: pipelines.PartnerCheckpointKey(7), Headers: hdrs(pipelines.PartnerCheckpointHeaders(7))}, true},
		{"entry", &kgo.Record{Key: []byte("v-1/2026-11-01"), Value: []byte{0xC3, 0x01}}, false},
		{"other record header", &kgo.Record{Headers: []kgo.RecordHeader{{Key: pipelines.HeaderRecord, Value: []byte("other")}}}, false},
		{"mark", &kgo.Record{Headers: []kgo.RecordHeader{{Key: pipelines.HeaderKind, Value: []byte(pipelines.KindMark)}}}, true},
	} {
		if got := isMark(c.r); got != c.want {
			t.Errorf("%s: isMark = %v, want %v", c.name, got, c.want)
		}
	}
}
