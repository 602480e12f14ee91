package witness_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/witness"
)

type idleFollower struct{}

func (idleFollower) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}

// tiledLog is a testLog whose blocks a real proofs.Server serves as
// tlog-tiles (the ledger's /ledger/), applied when the test says so.
type tiledLog struct {
	*testLog
	srv    *proofs.Server
	queued []*ledger.Block
	tamper atomic.Bool // flip a byte of every entry bundle served
	url    string
	prefix string // of the vehicle ids (default "m")
}

func newTiledLog(t testing.TB) *tiledLog {
	l := &tiledLog{testLog: newLog(t, 1), prefix: "m"}
	srv, err := proofs.NewServer(proofs.Config{Blocks: idleFollower{}, PublicKey: l.signer.Public(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l.srv = srv
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.tamper.Load() || !strings.Contains(r.URL.Path, "/entries/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		r.Header.Del("Accept-Encoding")
		h.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		if len(b) > 10 {
			b[len(b)-1] ^= 1
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(b)
	}))
	t.Cleanup(ts.Close)
	l.url = ts.URL + "/ledger"
	return l
}

// add appends n credits in blocks of at most 1,000, queued for the tile
// server (publish applies them) and returns the new checkpoint.
func (l *tiledLog) add(n int) string {
	l.t.Helper()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Clock: ledger.ClockEvent}
	for i := 0; i < n; i++ {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("%s%07d", l.prefix, l.next), 2, 10))
		l.next++
	}
	blks, _, _, err := l.book.Append(rel, 1000, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	l.queued = append(l.queued, blks...)
	cp := blks[len(blks)-1].Checkpoint
	l.cps[l.book.Size()] = cp
	return cp
}

func (l *tiledLog) publish() {
	l.t.Helper()
	for _, b := range l.queued {
		if err := l.srv.Apply(b); err != nil {
			l.t.Fatal(err)
		}
	}
	l.queued = nil
}

func newMirror(t testing.TB, dir string, l *tiledLog) *witness.Witness {
	t.Helper()
	w, err := witness.New(witness.Config{Dir: dir, Name: "witness.test/m1", Logs: []string{l.signer.VerifierKey()},
		Mirror: l.url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func get(t testing.TB, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// sameTiles checks that the mirror serves every tile and bundle of a tree
// of size n (every width ever published up to n) with the log's bytes.
func sameTiles(t *testing.T, mirrorURL, logURL string, sizes ...int64) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range sizes {
		for _, tl := range tlog.NewTiles(8, 0, n) {
			for _, dt := range []tlog.Tile{tl, {H: 8, L: -1, N: tl.N, W: tl.W}} {
				if dt.L == -1 && tl.L != 0 {
					continue
				}
				p := strings.Replace(strings.Replace(dt.Path(), "tile/8/", "tile/", 1), "tile/data/", "tile/entries/", 1)
				if seen[p] {
					continue
				}
				seen[p] = true
				c1, b1, h := get(t, mirrorURL+"/ledger/"+p)
				_, b2, _ := get(t, logURL+"/"+p)
				if c1 != 200 || !bytes.Equal(b1, b2) || len(b1) == 0 {
					t.Fatalf("%s: mirror %d, %d bytes; log %d bytes", p, c1, len(b1), len(b2))
				}
				if h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
					t.Fatalf("%s: Cache-Control %q", p, h.Get("Cache-Control"))
				}
			}
		}
	}
}

func waitMirror(t *testing.T, w *witness.Witness, size uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for w.Mirror().Size() < size {
		if time.Now().After(deadline) {
			t.Fatalf("mirror at size %d, want %d", w.Mirror().Size(), size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMirror: a witness in mirror mode fetches, verifies, stores and
// serves the whole book and cosigns it with its mirror key only once its
// copy is complete; it catches up after lagging and after a restart
// (fetching only what it lacks), and refuses tampered tiles.
func TestMirror(t *testing.T) {
	l := newTiledLog(t)
	dir := t.TempDir()
	w := newMirror(t, dir, l)
	m := w.Mirror()
	if m == nil || m.Name() != "witness.test/m1/mirror" || m.VerifierKey() == w.VerifierKey() {
		t.Fatalf("mirror key: %v", m)
	}
	ws := httptest.NewServer(w.Handler())
	defer ws.Close()
	if c, _, _ := get(t, ws.URL+"/ledger/checkpoint"); c != 404 {
		t.Fatalf("checkpoint before any: %d", c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// Sizes through partial and full tiles of levels 0 and 1.
	var sizes []int64
	old := uint64(0)
	for _, n := range []int{300, 7, 1, 2000, 256} {
		l.add(n)
		l.publish()
		if _, err := w.AddCheckpoint(l.request(old)); err != nil {
			t.Fatal(err)
		}
		old = l.book.Size()
		sizes = append(sizes, int64(old))
		waitMirror(t, w, old)
	}
	// The mirror checkpoint: the log's signature and the mirror's
	// cosignature, not the witness's.
	_, cp, _ := get(t, ws.URL+"/ledger/checkpoint")
	lv, _ := note.NewVerifier(l.signer.VerifierKey())
	mv, err := tdnote.NewVerifierForCosignatureV1(m.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(lv, mv))
	if err != nil || len(n.Sigs) != 2 || n.Text+"\n" == "" || !strings.HasPrefix(string(cp), l.book.Checkpoint()[:strings.Index(l.book.Checkpoint(), "\n\n")]) {
		t.Fatalf("mirror checkpoint %q: %v", cp, err)
	}
	wv, _ := tdnote.NewVerifierForCosignatureV1(w.VerifierKey())
	if n, _ := note.Open(cp, note.VerifierList(wv)); n != nil {
		t.Fatalf("the mirror checkpoint carries the witness key's signature")
	}
	sameTiles(t, ws.URL, l.url, sizes...)
	// Beyond the mirror checkpoint: 404; a non-canonical path: 400.
	if c, _, _ := get(t, ws.URL+"/ledger/tile/0/010"); c != 404 {
		t.Errorf("tile beyond the copy: %d", c)
	}
	if c, _, _ := get(t, ws.URL+"/ledger/tile/0/x000/001"); c != 400 {
		t.Errorf("non-canonical path: %d", c)
	}

	// Lagging: the witness cosigns a checkpoint whose tiles the log does
	// not serve yet: the mirror stays where it is, then catches up.
	l.add(500)
	if _, err := w.AddCheckpoint(l.request(old)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if m.Size() != old {
		t.Fatalf("mirror moved to %d without the tiles", m.Size())
	}
	l.publish()
	old = l.book.Size()
	waitMirror(t, w, old)
	sizes = append(sizes, int64(old))
	cancel()
	<-done

	// Restart: the copy and the mirror checkpoint are still there; the
	// next round fetches only the tiles that changed.
	w2 := newMirror(t, dir, l)
	if w2.Mirror().Size() != old || w2.Mirror().VerifierKey() != m.VerifierKey() {
		t.Fatalf("after restart: size %d, key %s", w2.Mirror().Size(), w2.Mirror().VerifierKey())
	}
	l.add(1000)
	l.publish()
	if _, err := w2.AddCheckpoint(l.request(old)); err != nil {
		t.Fatal(err)
	}
	st, err := w2.Mirror().Sync(context.Background(), w2.State(ledgertest.Origin))
	if err != nil {
		t.Fatal(err)
	}
	want := tlog.NewTiles(8, int64(old), int64(l.book.Size()))
	bundles := 0
	for _, tl := range want {
		if tl.L == 0 {
			bundles++
		}
	}
	if st.From != old || st.Tiles != len(want) || st.Bundles != bundles {
		t.Fatalf("catch-up after restart: %+v, want %d tiles and %d bundles from %d", st, len(want), bundles, old)
	}
	old = l.book.Size()
	sizes = append(sizes, int64(old))
	ws2 := httptest.NewServer(w2.Handler())
	defer ws2.Close()
	sameTiles(t, ws2.URL, l.url, sizes...)

	// A log serving tampered entry bundles: nothing is cosigned or
	// served beyond the verified copy, and nothing is stored as state.
	l.add(100)
	l.publish()
	if _, err := w2.AddCheckpoint(l.request(old)); err != nil {
		t.Fatal(err)
	}
	l.tamper.Store(true)
	if _, err := w2.Mirror().Sync(context.Background(), w2.State(ledgertest.Origin)); err == nil || !strings.Contains(err.Error(), "does not hash") {
		t.Fatalf("tampered bundle: %v", err)
	}
	if w2.Mirror().Size() != old {
		t.Fatalf("mirror moved to %d on a tampered bundle", w2.Mirror().Size())
	}
	if _, cp2, _ := get(t, ws2.URL+"/ledger/checkpoint"); !bytes.Contains(cp2, []byte(fmt.Sprintf("\n%d\n", old))) {
		t.Fatalf("checkpoint after tampering: %q", cp2)
	}
	l.tamper.Store(false)
	if _, err := w2.Mirror().Sync(context.Background(), w2.State(ledgertest.Origin)); err != nil {
		t.Fatal(err)
	}
	// Nothing half-written is left: no temporary file in the copy.
	_ = filepath.Walk(filepath.Join(dir, "mirror"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(fi.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestMirrorRejectsWrongRoot: tiles of another history under the same
// key and origin (served to the mirror only) do not recompute the
// cosigned root: refused, nothing cosigned.
func TestMirrorRejectsWrongRoot(t *testing.T) {
	l := newTiledLog(t)
	other := newTiledLog(t) // another book under the same key and origin
	w := newMirror(t, t.TempDir(), l)
	l.add(300)
	l.publish()
	other.prefix = "x"
	other.add(300) // other entries: other vehicles
	other.publish()
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	st := w.State(ledgertest.Origin)
	// Point the mirror at the other book's tiles: same origin, same key,
	// another history; the root recomputed from them is not the one cosigned.
	w2, err := witness.New(witness.Config{Dir: t.TempDir(), Name: "witness.test/m2", Logs: []string{l.signer.VerifierKey()},
		Mirror: other.url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Mirror().Sync(context.Background(), w2.State(ledgertest.Origin)); err == nil || !strings.Contains(err.Error(), "hash to") {
		t.Fatalf("tiles of another book accepted for size %d", st.Size)
	}
	if w2.Mirror().Size() != 0 || w2.Mirror().Checkpoint() != "" {
		t.Fatalf("mirror cosigned another book")
	}
}

// TestMirrorLevels: a book past 65,536 entries has full level-1 tiles and
// a level-2 tile: every level verified (each upper hash against the full
// tile below it) and served as the ledger serves it, first in one round,
// then across a full level-1 tile completed in a catch-up.
func TestMirrorLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("70,000 entries")
	}
	l := newTiledLog(t)
	w := newMirror(t, t.TempDir(), l)
	l.add(65_000)
	l.publish()
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Mirror().Sync(context.Background(), w.State(ledgertest.Origin)); err != nil {
		t.Fatal(err)
	}
	l.add(5_005) // 70,005: level-1 tile 0 full, level 2 begins
	l.publish()
	if _, err := w.AddCheckpoint(l.request(65_000)); err != nil {
		t.Fatal(err)
	}
	st, err := w.Mirror().Sync(context.Background(), w.State(ledgertest.Origin))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(tlog.NewTiles(8, 65_000, 70_005)); st.Tiles != want {
		t.Fatalf("catch-up fetched %d tiles, want %d", st.Tiles, want)
	}
	ws := httptest.NewServer(w.Handler())
	defer ws.Close()
	for _, p := range []string{"tile/1/000", "tile/2/000.p/1", "tile/1/001.p/17", "tile/0/273.p/117", "tile/entries/273.p/117", "tile/0/253.p/232"} {
		c1, b1, _ := get(t, ws.URL+"/ledger/"+p)
		_, b2, _ := get(t, l.url+"/"+p)
		if c1 != 200 || !bytes.Equal(b1, b2) {
			t.Errorf("%s: %d, %d bytes, log %d bytes", p, c1, len(b1), len(b2))
		}
	}
}
