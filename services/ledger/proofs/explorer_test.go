package proofs_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// TestExplorer: the explorer's reads show the verified book as the blocks
// hold it: every header (chained by prev_hash, paged newest first), every
// block's entries with their canonical bytes and leaf hashes, and each
// leaf found in its block.
func TestExplorer(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, signer)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var empty proofs.Blocks
	getJSON(t, hs.URL+"/v1/ledger/blocks", http.StatusOK, &empty)
	if empty.Height != 0 || len(empty.Blocks) != 0 || empty.Before != nil {
		t.Errorf("empty book: %+v", empty)
	}
	for _, b := range blocks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	if len(blocks) < 2 {
		t.Fatalf("want a book of several blocks, have %d", len(blocks))
	}

	// Paged by one: every header, newest first, chained.
	var got []proofs.BlockHeader
	url := hs.URL + "/v1/ledger/blocks?limit=1"
	for range len(blocks) + 1 {
		var page proofs.Blocks
		getJSON(t, url, http.StatusOK, &page)
		got = append(got, page.Blocks...)
		if page.Before == nil {
			break
		}
		url = fmt.Sprintf("%s/v1/ledger/blocks?limit=1&before=%d", hs.URL, *page.Before)
	}
	if len(got) != len(blocks) {
		t.Fatalf("paged %d headers, want %d", len(got), len(blocks))
	}
	for i, h := range got {
		want := blocks[len(blocks)-1-i].Header
		if h.Height != want.Height || h.Root != want.Root.String() || h.Hash != want.Hash().String() || h.TreeSize != want.TreeSize {
			t.Errorf("header %d: %+v, want %+v", i, h, want)
		}
		if i+1 < len(got) && h.PrevHash != got[i+1].Hash {
			t.Errorf("header %d: prev_hash %s, the block below hashes to %s", h.Height, h.PrevHash, got[i+1].Hash)
		}
	}

	for _, b := range blocks {
		var v proofs.BlockView
		getJSON(t, fmt.Sprintf("%s/v1/ledger/blocks/%d", hs.URL, b.Header.Height), http.StatusOK, &v)
		if len(v.Entries) != len(b.Entries) {
			t.Fatalf("block %d: %d entries, want %d", b.Header.Height, len(v.Entries), len(b.Entries))
		}
		for i, e := range v.Entries {
			dec, _ := ledger.DecodeEntry(b.Entries[i])
			if !bytes.Equal(e.Entry, b.Entries[i]) || e.LeafHash != merkle.HashLeaf(b.Entries[i]).String() ||
				e.LeafIndex != b.Header.FirstIndex+uint64(i) || e.ID != dec.ID || e.Delta != dec.Delta() || e.Kind != dec.Kind.String() {
				t.Errorf("block %d entry %d: %+v, want %+v", b.Header.Height, i, e, dec)
			}
			var leaf proofs.EntryView
			getJSON(t, fmt.Sprintf("%s/v1/ledger/leaves/%d", hs.URL, e.LeafIndex), http.StatusOK, &leaf)
			if leaf.BlockHeight != b.Header.Height || leaf.LeafHash != e.LeafHash {
				t.Errorf("leaf %d: block %d hash %s, want block %d hash %s", e.LeafIndex, leaf.BlockHeight, leaf.LeafHash, b.Header.Height, e.LeafHash)
			}
		}
	}
	last := blocks[len(blocks)-1].Header
	for _, tc := range []struct {
		path string
		code int
	}{
		{fmt.Sprintf("/v1/ledger/blocks/%d", last.Height+1), http.StatusNotFound},
		{"/v1/ledger/blocks/x", http.StatusBadRequest},
		{fmt.Sprintf("/v1/ledger/leaves/%d", last.TreeSize), http.StatusNotFound},
		{"/v1/ledger/leaves/-1", http.StatusBadRequest},
		{"/v1/ledger/blocks?limit=0", http.StatusBadRequest},
		{"/v1/ledger/blocks?limit=101", http.StatusBadRequest},
		{"/v1/ledger/blocks?before=x", http.StatusBadRequest},
	} {
		getJSON(t, hs.URL+tc.path, tc.code, nil)
	}
}
