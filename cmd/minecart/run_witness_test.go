package main

import (
	"strings"
	"testing"

	"github.com/minecart/minecart/services/witness"
)

// TestEmbeddedWitnesses: --witnesses and --witness-addrs of `minecart run`.
func TestEmbeddedWitnesses(t *testing.T) {
	for _, c := range []struct {
		f     runFlags
		addrs []string
		err   string
	}{
		{f: runFlags{witnesses: 3}, addrs: []string{"", "", ""}},
		{f: runFlags{witnesses: 3, httpAddr: ":19991"}, addrs: []string{"", "", ""}},
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
			// The last one mirrors the book when the HTTP port is known.
			var wc witness.Config
			if got[i].Configure != nil {
				got[i].Configure(&wc)
			}
			want := ""
			if i == len(got)-1 && c.f.httpAddr == ":19991" {
				want = "http://127.0.0.1:19991/ledger"
			}
			if wc.Mirror != want {
				t.Errorf("%+v: witness %d mirrors %q, want %q", c.f, i, wc.Mirror, want)
			}
		}
	}
}
