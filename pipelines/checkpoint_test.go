package pipelines

import (
	"testing"
)

func TestPartnerCheckpointRecord(t *testing.T) {
	if k := string(PartnerCheckpointKey(1000)); k != "checkpoint:00000000000000001000" {
		t.Fatalf("key %q", k)
	}
	hs := PartnerCheckpointHeaders(1000)
	if len(hs) != 2 || hs[0].Key != "minecart-record" || string(hs[0].Value) != "ledger-checkpoint" || hs[1].Key != "minecart-tree-size" || string(hs[1].Value) != "1000" {
		t.Fatalf("headers %+v", hs)
	}
	header := func(v string) func(string) ([]byte, bool) {
		return func(name string) ([]byte, bool) { return []byte(v), name == HeaderRecord }
	}
	for _, tc := range []struct {
		key    string
		header func(string) ([]byte, bool)
		want   bool
	}{
		{"checkpoint:00000000000000001000", nil, true},
		{"checkpoint:00000000000000001000", header("ledger-checkpoint"), true},
		{"c42fa2080ef951d3abac297e73b8de06", header("ledger-checkpoint"), true}, // the header decides
		{"checkpoint:00000000000000001000", header("order"), false},
		{"c42fa2080ef951d3abac297e73b8de06", nil, false},
		{"acme/checkpoint", nil, false},
		{"checkpoint:1000", nil, false},
		{"checkpoint:0000000000000000100x", nil, false},
		{"checkpoint:99999999999999999999", nil, false}, // beyond uint64
	} {
		if got := IsPartnerCheckpoint([]byte(tc.key), tc.header); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.key, got, tc.want)
		}
	}
	for topic, want := range map[string]bool{
		PartnerRedemptionsTopic("acme"): true, PartnerCampaignsTopic("a.b-c"): true,
		TopicPartnerAcks: false, TopicLedgerCheckpoints: false, "minecart.partner..redemptions": false, "minecart.partner.acme.status": false,
	} {
		if IsPartnerTopic(topic) != want {
			t.Errorf("IsPartnerTopic(%q) != %v", topic, want)
		}
	}
}
