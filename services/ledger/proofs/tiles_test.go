package proofs_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// bigBook appends n credits in blocks of the given sizes (cycled) and
// returns the blocks.
func bigBook(t testing.TB, s *ledger.Signer, n int, sizes ...int) []*ledger.Block {
	t.Helper()
	b := ledger.NewBook()
	var all []*ledger.Block
	for i, k := 0, 0; i < n; k++ {
		size := min(sizes[k%len(sizes)], n-i)
		rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Clock: ledger.ClockEvent}
		for j := 0; j < size; j++ {
			rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("v%07d", i+j), 2, int64(i+j)))
		}
		blks, _, _, err := b.Append(rel, size, s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blks...)
		i += size
	}
	return all
}

// tileClient reads tiles and entry bundles over HTTP, as any tlog-tiles
// client would: the paths are golang.org/x/mod/sumdb/tlog's (Tile.Path),
// less its height element ("tile/8/"), with "data" spelt "entries".
type tileClient struct {
	t      testing.TB
	prefix string // http://host/ledger/
	mu     sync.Mutex
	cache  map[string][]byte
	gets   int
}

func tilePath(tile tlog.Tile) string {
	p := strings.TrimPrefix(tile.Path(), "tile/8/")
	if tile.L == -1 {
		p = "entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

func (c *tileClient) get(path string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.cache[path]; ok {
		return b
	}
	resp, err := http.Get(c.prefix + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if strings.HasPrefix(path, "tile/") {
		if cc := resp.Header.Get("Cache-Control"); cc != proofs.ImmutableCache {
			c.t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
			c.t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
	c.gets++
	c.cache[path] = body
	return body
}

func (c *tileClient) Height() int { return 8 }

func (c *tileClient) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		out[i] = c.get(tilePath(tile))
	}
	return out, nil
}

func (c *tileClient) SaveTiles([]tlog.Tile, [][]byte) {}

// entries splits an entry bundle.
func splitBundle(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("bundle: trailing byte")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("bundle: entry of %d bytes past the end", n)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// checkTiles proves, from the tiles and entry bundles alone, every leaf of
// the tree named by the checkpoint served at prefix (every step-th leaf
// and the last 300), and that the tree extends each of the older
// checkpoints.
func checkTiles(t *testing.T, prefix string, signer *ledger.Signer, older []string, step int64) {
	t.Helper()
	c := &tileClient{t: t, prefix: prefix, cache: map[string][]byte{}}
	resp, err := http.Get(prefix + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	cpText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("checkpoint: %s %v", resp.Status, resp.Header)
	}
	v, err := note.NewVerifier(signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cpText, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint %q: %v", cpText, err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	root, err := tlog.ParseHash(lines[2])
	if err != nil || lines[0] != signer.Origin() {
		t.Fatalf("checkpoint body %q: %v", n.Text, err)
	}
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, c) // checks every tile it reads against root
	for i := int64(0); i < size; i++ {
		if i%step != 0 && i < size-300 {
			continue
		}
		bundle := c.get(tilePath(tlog.Tile{H: 8, L: -1, N: i / 256, W: int(min(256, size-i/256*256))}))
		entries := splitBundle(t, bundle)
		entry := entries[i%256]
		if _, err := ledger.DecodeEntry(entry); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		leaf := tlog.RecordHash(entry)
		p, err := tlog.ProveRecord(size, i, thr)
		if err != nil {
			t.Fatalf("leaf %d: prove from tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(p, size, root, i, leaf); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		// And the same proof by transparency-dev/merkle.
		raw := make([][]byte, len(p))
		for k := range p {
			raw[k] = p[k][:]
		}
		if err := tdproof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(size), leaf[:], raw, root[:]); err != nil {
			t.Fatalf("leaf %d: transparency-dev/merkle: %v", i, err)
		}
	}
	for _, o := range older {
		cp, err := ledger.VerifyCheckpoint(o, signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		p, err := tlog.ProveTree(size, int64(cp.Size), thr)
		if err != nil {
			t.Fatalf("consistency %d -> %d from tiles: %v", cp.Size, size, err)
		}
		if err := tlog.CheckTree(p, size, root, int64(cp.Size), tlog.Hash(cp.Root)); err != nil {
			t.Fatalf("consistency %d -> %d: %v", cp.Size, size, err)
		}
		// The older tree from its own (partial) tiles alone, too.
		othr := tlog.TileHashReader(tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}, c)
		if _, err := tlog.TreeHash(int64(cp.Size), othr); err != nil {
			t.Fatalf("tree %d from its tiles: %v", cp.Size, err)
		}
	}
	t.Logf("%d leaves proven from %d tiles and bundles", size, c.gets)
}

// TestTilesOnBroker: a proof Server following a book on a real broker
// serves it as tlog-tiles, and every leaf is proven from the tiles alone
// with golang.org/x/mod/sumdb/tlog, as is the consistency with every
// checkpoint the book published on the way.
func TestTilesOnBroker(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book := bigBook(t, signer, 3000, 1000, 7, 256, 300, 1)
	var recs []kafka.Output
	var cps []string
	for _, b := range book {
		v, err := schemas.SingleObject().Marshal(b.Avro())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte(strconv.FormatUint(b.Header.Height, 10)), Value: v})
		cps = append(cps, b.Checkpoint)
	}
	kafkatest.Produce(t, brokers, recs...)
	r, err := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proofs.NewServer(proofs.Config{Blocks: r, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	for {
		h, _ := srv.Head(ctx)
		if h.CaughtUp && h.TreeSize == 3000 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("server at %+v", h)
		case <-time.After(20 * time.Millisecond):
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	checkTiles(t, hs.URL+"/ledger/", signer, cps, 1)
	cancel()
	<-done
}

// TestTilesLevels: a tree of 70,000 + 5 leaves (tiles of levels 0, 1 and
// 2, full and partial) proven from its tiles: every 61st leaf (each
// bundle, each level-0 tile) and the last 300.
func TestTilesLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("70,000 leaves")
	}
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book := bigBook(t, signer, 70_005, 1000, 1000, 1000, 5)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range book {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	checkTiles(t, hs.URL+"/ledger/", signer, []string{book[0].Checkpoint, book[64].Checkpoint, book[len(book)-2].Checkpoint}, 61)
	// The tiles the spec's example names for a tree of this size exist.
	for _, p := range []string{"0/272", "0/273.p/117", "1/000", "1/001.p/17", "2/000.p/1", "entries/273.p/117"} {
		resp, err := http.Get(hs.URL + "/ledger/tile/" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
}

// TestTileRequests: answers to paths that name nothing, or nothing yet,
// headers and compression.
func TestTileRequests(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", hs.URL+"/ledger/"+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, _ := get("checkpoint"); resp.StatusCode != 404 {
		t.Errorf("checkpoint of an empty book: %s", resp.Status)
	}
	for _, b := range bigBook(t, signer, 600, 300) {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path string
		code int
		n    int // bytes of a 200
	}{
		{"tile/0/000", 200, 8192},
		{"tile/0/001", 200, 8192},
		{"tile/0/002.p/88", 200, 88 * 32},
		{"tile/0/002.p/1", 200, 32},
		{"tile/1/000.p/2", 200, 64},
		{"tile/0/002.p/89", 404, 0}, // not yet
		{"tile/0/002", 404, 0},
		{"tile/0/003.p/1", 404, 0},
		{"tile/1/000", 404, 0},
		{"tile/2/000.p/1", 404, 0},
		{"tile/63/000.p/1", 404, 0},
		{"tile/0/x001/234", 404, 0},
		{"tile/0/x000/001", 400, 0}, // not canonical
		{"tile/00/000", 400, 0},
		{"tile/64/000", 400, 0},
		{"tile/0/1", 400, 0},
		{"tile/0/0001", 400, 0},
		{"tile/0/001.p/0", 400, 0},
		{"tile/0/001.p/256", 400, 0},
		{"tile/0/001.p/08", 400, 0},
		{"tile/0/001/002", 400, 0},
		{"tile/0", 400, 0},
		{"tile/-1/000", 400, 0},
		{"tile/entries/000", 200, -1},
		{"tile/entries/002.p/88", 200, -1},
		{"tile/entries/002.p/89", 404, 0},
		{"tile/data/000", 400, 0},
	} {
		resp, body := get(tc.path)
		if resp.StatusCode != tc.code || (tc.n >= 0 && tc.code == 200 && len(body) != tc.n) {
			t.Errorf("%s: %s, %d bytes; want %d, %d bytes", tc.path, resp.Status, len(body), tc.code, tc.n)
		}
		if tc.code != 200 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: an error cacheable: %q", tc.path, resp.Header.Get("Cache-Control"))
		}
	}
	// Entry bundles: gzip when asked, identity otherwise, the same bytes.
	resp, plain := get("tile/entries/001")
	if resp.Header.Get("Content-Encoding") != "" || len(splitBundle(t, plain)) != 256 {
		t.Fatalf("identity bundle: %v, %d bytes", resp.Header, len(plain))
	}
	resp, zipped := get("tile/entries/001", "Accept-Encoding", "gzip, identity")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip bundle: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if !bytes.Equal(unzipped, plain) || len(zipped) >= len(plain) {
		t.Errorf("gzip bundle: %d bytes, %d unzipped, identity %d", len(zipped), len(unzipped), len(plain))
	}
	if resp, _ := get("tile/entries/001", "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 answered with %q", resp.Header.Get("Content-Encoding"))
	}
	// The bundle's entries are the book's, in order, each hashing to its
	// leaf in the level-0 tile.
	_, tile := get("tile/0/001")
	for i, e := range splitBundle(t, plain) {
		h := tlog.RecordHash(e)
		if !bytes.Equal(h[:], tile[32*i:32*i+32]) {
			t.Fatalf("bundle 1 entry %d does not hash to tile 0/001 hash %d", i, i)
		}
	}
}

// BenchmarkTileServing: requests per second for a full tile (level 0 and
// 1) and a full entry bundle (gzip: Go's client asks for it) over HTTP on
// loopback with keep-alive, 8 client goroutines, against making the tile
// in process (the copy of its 8 KiB).
func BenchmarkTileServing(b *testing.B) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	srv, _ := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	for _, blk := range bigBook(b, signer, 70_000, 1000) {
		if err := srv.Apply(blk); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("in-process_tile_0_123", func(b *testing.B) {
		for b.Loop() {
			if _, err := srv.Tile(0, 123, 256); err != nil {
				b.Fatal(err)
			}
		}
	})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, path := range []string{"tile/0/123", "tile/1/000", "tile/entries/123"} {
		b.Run(strings.ReplaceAll(path, "/", "_"), func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(hs.URL + "/ledger/" + path)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
