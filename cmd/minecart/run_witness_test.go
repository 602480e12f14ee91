package main

import (
	"strings"
	"testing"
)

// TestEmbeddedWitnesses: --witnesses and --witness-addrs of `minecart run`.
func TestEmbeddedWitnesses(t *testing.T) {
	for _, c := range []struct {
		f     runFlags
		addrs []string
		err   string
	}{
		{f: runFlags{witnesses: 3}, addrs: []string{"", "", ""}},
		{f: runFlags{witnesses: 0}},
		{f: runFlags{witnesses: 2, witnessAddrs: "127.0.0.1:1, 127.0.0.1:2"}, addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		{f: runFlags{witnesses: 3, witnessAddrs: "127.0.0.1:1"}, err: "1 addresses for 3 witnesses"},
		{f: runFlags{witnesses: -1}, err: "want 0 or more"},
		{f: runFlags{witnesses: 3, policy: "p.txt"}},
	} {
		got, err := embeddedWitnesses(c.f)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %v, want %q", c.f, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.addrs) {
			t.Errorf("%+v: %v %v", c.f, got, err)
			continue
		}
		for i := range got {
			if got[i].Addr != c.addrs[i] {
				t.Errorf("%+v: witness %d addr %q, want %q", c.f, i, got[i].Addr, c.addrs[i])
			}
		}
	}
}
