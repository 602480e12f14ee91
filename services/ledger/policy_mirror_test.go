package ledger

import "testing"

// Valid cosignature v1 keys (those of infra/k8s/witnesses.yaml).
const (
	exW1 = "witness-1.minecart.example+322d5a4d+BGLev5/WByBTSausIs49q/tK8stRG7scwZdEyHBKzwNg"
	exW2 = "witness-2.minecart.example+15724527+BPX4EWqus0Djp3Vk+w2s4mS2p3NsvRtEwlNSx/zog1ho"
	exW3 = "witness-3.minecart.example+b5369c72+BMEhBtq9UlmDTN+EFsLJM0ifMQmnHKOTTlgyhQ9fKOZL"
	exM3 = "witness-3.minecart.example/mirror+26ac141e+BEA+gT1gVukZCKE7N/BnZs0fWEnQiGG82kbHyf8HIhWf"
)

// TestPolicyMirrorAndNames: a witness line whose URL is a /ledger prefix
// is a mirror (its witness API is the URL without it); the quorum
// evaluated by names (SatisfiedBy, Requires) and spelt out (QuorumText).
func TestPolicyMirrorAndNames(t *testing.T) {
	head := "witness w1 " + exW1 + " http://w1:8090\nwitness w2 " + exW2 + " http://w2:8090/\nwitness w3 " + exW3 + " http://w3:8090\nwitness m3 " + exM3 + " http://w3:8090/ledger\n"
	for _, tc := range []struct {
		name, tail, text string
		sat              [][]string
		unsat            [][]string
		requiresM3       bool
	}{
		{"flat", "group g 2 w1 w2 w3\nquorum g\n", "2 of 3 witnesses",
			[][]string{{"w1", "w2"}, {"w2", "w3", "m3"}}, [][]string{{"w3", "m3"}, {"m3"}}, false},
		{"mirror required", "group w 2 w1 w2 w3\ngroup m any m3\ngroup q all w m\nquorum q\n", "all of (2 of (w1, w2, w3), any of (m3))",
			[][]string{{"w1", "w2", "m3"}, {"w2", "w3", "m3"}}, [][]string{{"w1", "w2", "w3"}, {"w3", "m3"}}, true},
		{"mirror counts as one of 4", "group g 3 w1 w2 w3 m3\nquorum g\n", "3 of 4 witnesses",
			[][]string{{"w1", "w2", "m3"}, {"w1", "w2", "w3"}}, [][]string{{"w3", "m3"}}, false},
		{"the mirror alone", "quorum m3\n", "m3", [][]string{{"m3"}}, [][]string{{"w1", "w2", "w3"}}, true},
		{"none", "quorum none\n", "none", [][]string{{}}, nil, false},
	} {
		p, err := ParsePolicy([]byte(head + tc.tail))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, w := range p.Witnesses {
			if w.Mirror != (w.Name == "m3") {
				t.Errorf("%s: %s mirror %v", tc.name, w.Name, w.Mirror)
			}
		}
		if m := p.Witnesses[3]; m.WitnessAPI() != "http://w3:8090" || m.URL != "http://w3:8090/ledger" || p.Witnesses[1].WitnessAPI() != "http://w2:8090" {
			t.Errorf("%s: URLs %q %q", tc.name, m.WitnessAPI(), p.Witnesses[1].WitnessAPI())
		}
		for _, s := range tc.sat {
			if !p.SatisfiedBy(s...) {
				t.Errorf("%s: %v should meet the quorum", tc.name, s)
			}
		}
		for _, s := range tc.unsat {
			if p.SatisfiedBy(s...) {
				t.Errorf("%s: %v should not meet the quorum", tc.name, s)
			}
		}
		if p.Requires("m3") != tc.requiresM3 || p.QuorumText() != tc.text {
			t.Errorf("%s: requires m3 %v, text %q", tc.name, p.Requires("m3"), p.QuorumText())
		}
	}
}
