package ledger_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestAppendRawsAreIndependent: Append encodes a release's entries into
// shared buffers; each entry's Raw must be exactly its own encoding and
// appending to one must not reach another (they are capped).
func TestAppendRawsAreIndependent(t *testing.T) {
	signer, err := ledger.NewSigner("minecart/ledger", ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	for i := range 3000 { // several 64 KiB buffers
		entries = append(entries, ledgertest.Credit(fmt.Sprintf("veh-%05d", i), 1+i%5, int64(i%40)))
	}
	_, out, skipped, err := ledger.NewBook().Append(ledger.Release{Entries: entries, TimestampMs: 2 * ledgertest.DayMs}, 1000, signer)
	if err != nil || len(skipped) != 0 || len(out) != len(entries) {
		t.Fatalf("append: %v, %d skipped, %d out", err, len(skipped), len(out))
	}
	want := make([][]byte, len(out))
	for i := range out {
		if want[i], err = entries[i].Encode(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[i].Raw, want[i]) {
			t.Fatalf("entry %d: raw differs from its encoding", i)
		}
		if cap(out[i].Raw) != len(out[i].Raw) {
			t.Fatalf("entry %d: raw has spare capacity %d", i, cap(out[i].Raw)-len(out[i].Raw))
		}
	}
	for i := range out {
		_ = append(out[i].Raw, 0xff, 0xff, 0xff, 0xff)
	}
	for i := range out {
		if !bytes.Equal(out[i].Raw, want[i]) || !bytes.Equal(out[i].Block.Entries[out[i].LeafIndex%1000], want[i]) {
			t.Fatalf("entry %d changed by an append to another", i)
		}
	}
}
