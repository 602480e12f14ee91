package stack

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/minecart/minecart/services/ledger"
)

// stackTiles reads a running stack's /ledger/ tiles as a tlog-tiles
// client: golang.org/x/mod/sumdb/tlog's tile paths less "8/", data as
// "entries".
type stackTiles struct {
	t    *testing.T
	base string
	seen map[string][]byte
}

func (c *stackTiles) get(path string) []byte {
	if b, ok := c.seen[path]; ok {
		return b
	}
	resp, err := http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	c.seen[path] = b
	return b
}

func (c *stackTiles) Height() int { return 8 }
func (c *stackTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		out[i] = c.get(strings.Replace(tile.Path(), "tile/8/", "tile/", 1))
	}
	return out, nil
}
func (c *stackTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestStackServesTiles: the running pipeline serves its book as C2SP
// tlog-tiles under /ledger/, publicly: the checkpoint verifies with the
// ledger's verifier key and every leaf (300 adjustments: a full level-0
// tile, a partial one, a partial level-1 tile) is proven from the tiles
// and entry bundles alone with golang.org/x/mod/sumdb/tlog.
func TestStackServesTiles(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := startStack(t, ctx, t.TempDir(), "")
	defer func() { st.Close() }()
	const n = 300
	for i := 0; i < n; i++ {
		adjust(t, ctx, st, fmt.Sprintf("req-%03d", i))
	}
	waitHead(t, ctx, st, n)

	c := &stackTiles{t: t, base: "http://" + st.HTTPAddr() + "/ledger/", seen: map[string][]byte{}}
	signer, err := ledger.NewSigner("minecart/ledger", st.LedgerKey)
	if err != nil || !signer.Public().Equal(st.LedgerKey.Public().(ed25519.PublicKey)) {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(signer.VerifierKey())
	cp, err := note.Open(c.get("checkpoint"), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(cp.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	root, err := tlog.ParseHash(lines[2])
	if err != nil || size != n {
		t.Fatalf("checkpoint %q: %v", cp.Text, err)
	}
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, c)
	for i := int64(0); i < size; i++ {
		path := fmt.Sprintf("tile/entries/%03d", i/256)
		if rest := size - i/256*256; rest < 256 {
			path += fmt.Sprintf(".p/%d", rest)
		}
		bundle := c.get(path)
		var entry []byte
		for k := int64(0); k <= i%256; k++ {
			l := int(binary.BigEndian.Uint16(bundle))
			entry, bundle = bundle[2:2+l], bundle[2+l:]
		}
		e, err := ledger.DecodeEntry(entry)
		if err != nil || e.ID != fmt.Sprintf("req-%03d", i) {
			t.Fatalf("leaf %d: %+v %v", i, e, err)
		}
		p, err := tlog.ProveRecord(size, i, thr)
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(entry)); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
}
