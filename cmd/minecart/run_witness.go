package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/minecart/minecart/services/stack"
	"github.com/minecart/minecart/services/witness"
)

// embeddedWitnesses are the witnesses `minecart run` starts: --witnesses
// of them, on --witness-addrs (default 127.0.0.1:0 each); none with
// --witness-policy.
func embeddedWitnesses(f runFlags) ([]stack.WitnessConfig, error) {
	if f.policy != "" {
		return nil, nil
	}
	if f.witnesses < 0 {
		return nil, fmt.Errorf("--witnesses %d: want 0 or more", f.witnesses)
	}
	var addrs []string
	if f.witnessAddrs != "" {
		addrs = strings.Split(f.witnessAddrs, ",")
		if len(addrs) != f.witnesses {
			return nil, fmt.Errorf("--witness-addrs has %d addresses for %d witnesses", len(addrs), f.witnesses)
		}
	}
	out := make([]stack.WitnessConfig, f.witnesses)
	for i := range out {
		if addrs != nil {
			out[i].Addr = strings.TrimSpace(addrs[i])
		}
	}
	// The last witness is also a mirror of the book (docs/ledger.md,
	// "Mirror mode"): it copies the tiles from this process's /ledger/.
	if u := mirrorSource(f.httpAddr); len(out) > 0 && u != "" {
		out[len(out)-1].Configure = func(c *witness.Config) { c.Mirror = u }
	}
	return out, nil
}

// mirrorSource is the URL of the ledger's tiles on the HTTP address addr
// ("" for port 0: not known before the listener starts).
func mirrorSource(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" || port == "" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/ledger"
}

// printCosigned prints the checkpoint published with the witness quorum
// once it covers size entries (it waits up to 30s for the publisher), and
// which witnesses cosigned it.
func printCosigned(ctx context.Context, w io.Writer, st *stack.Stack, size uint64) {
	if st.Policy == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		h, err := st.Ledger.Head(ctx)
		if err == nil && h.Cosigned != "" && h.CosignedSize >= size {
			fmt.Fprintf(w, "cosigned         tree size %d by %s (quorum %s)\n", h.CosignedSize, strings.Join(h.CosignedSigners, ", "), st.Policy.QuorumText())
			for _, l := range strings.Split(strings.TrimSuffix(h.Cosigned, "\n"), "\n") {
				fmt.Fprintln(w, strings.TrimRight("  "+l, " "))
			}
			return
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "cosigned         none yet for tree size %d: the witness quorum has not answered (cosigned size %d)\n", size, h.CosignedSize)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// printWitnesses says where the embedded witnesses listen and where their
// policy is.
func printWitnesses(w io.Writer, st *stack.Stack, policyPath string) {
	if st.Policy == nil {
		fmt.Fprintln(w, "witnesses: none (checkpoints are published as the ledger signs them)")
		return
	}
	var b strings.Builder
	for _, pw := range st.Policy.Witnesses {
		fmt.Fprintf(&b, " %s %s", pw.Name, pw.URL)
	}
	fmt.Fprintf(w, "witnesses:%s (quorum %s, policy %s)\n", b.String(), st.Policy.QuorumText(), policyPath)
	for _, ew := range st.Witnesses {
		if m := ew.Mirror(); m != nil {
			fmt.Fprintf(w, "mirror: %s holds the whole book, served on %s/ledger/, mirror key %s\n", ew.PolicyName, ew.URL, m.VerifierKey())
		}
	}
}
