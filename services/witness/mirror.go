package witness

// Mirror mode (c2sp.org/tlog-mirror, pull form): the witness also keeps a
// full copy of the log. Each checkpoint it cosigns as a witness becomes
// the mirror's *pending checkpoint*; the mirror then fetches from the
// log's tlog-tiles prefix every tile and entry bundle it lacks up to that
// size (tlog.NewTiles from its own size: only what it lacks, also after
// a restart), verifies them (every entry hashes to its level-0 tile hash,
// every hash of a level-L tile is the Merkle root of the full level-(L-1)
// tile below it, the unchanged prefix of a partial tile equals the copy,
// and the root recomputed from the tiles with tlog.TreeHash equals the
// pending checkpoint's root), writes them (temporary file, fsync, rename;
// the directories fsynced once per round), and only then cosigns the
// checkpoint with its mirror key (a cosignature v1 key of its own,
// mirror.key) and stores the result as the *mirror checkpoint*
// (mirror/state.json, atomically). It serves its copy under /ledger/ with
// the paths of the log, the mirror checkpoint on /ledger/checkpoint.
//
// Layout of <Dir>/mirror/: state.json (origin, size, root, the mirror
// checkpoint: the log's signature and the mirror's cosignature),
// tile/<L>/<N> and tile/entries/<N> for full tiles and bundles (the
// canonical path), tile/<L>/<N>.p and tile/entries/<N>.p for the widest
// partial tile or bundle of that index fetched so far. What is served is
// bounded by the mirror checkpoint's size, so data fetched for a pending
// checkpoint that a crash interrupted is never served before it is
// committed.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/minecart/minecart/pipelines/prom"
)

// mirrorKeyFile is the mirror's own key (the witness key signs as a
// witness; this one only the checkpoints the mirror holds in full).
const mirrorKeyFile = "mirror.key"

// tileHeight is the tlog-tiles tile height (256 hashes).
const tileHeight = 8

// maxBundle bounds a fetched entry bundle (256 entries of at most 64 KiB
// each and their lengths).
const maxBundle = 256 * (2 + 0xffff)

// Mirror is the mirror of a Witness in mirror mode.
type Mirror struct {
	w         *Witness
	origin    string
	url       string
	dir       string
	client    *http.Client
	signer    note.Signer
	vkey      string
	verifiers note.Verifiers
	kick      chan struct{}

	mu    sync.RWMutex
	state *MirrorState // committed; nil before the first

	fetched  *prometheus.CounterVec
	bytesIn  prometheus.Counter
	size     prometheus.Gauge
	rounds   *prometheus.CounterVec
	duration prometheus.Histogram
}

// MirrorState is the mirror checkpoint (mirror/state.json).
type MirrorState struct {
	Origin     string `json:"origin"`
	Size       uint64 `json:"size"`
	Root       []byte `json:"root"`
	Checkpoint string `json:"checkpoint"` // the log's signature and the mirror's cosignature
	UpdatedMs  int64  `json:"updated_ms"`
}

func newMirror(w *Witness, m *prom.Metrics) (*Mirror, error) {
	var origin string
	var vs []note.Verifier
	for o, v := range w.logs {
		origin, vs = o, v
	}
	name := w.cfg.MirrorName
	if name == "" && w.cfg.Name != "" {
		name = w.cfg.Name + "/mirror"
	}
	if name == "" {
		name = w.signer.Name() + "/mirror"
	}
	skey, err := loadKey(w.cfg.MirrorKeyFile, w.cfg.Dir, mirrorKeyFile, name)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	s, err := tdnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("mirror key: %w", err)
	}
	if s.Name() == w.signer.Name() {
		return nil, fmt.Errorf("mirror: the mirror key must have another name than the witness key (%q)", s.Name())
	}
	vkey, err := vkeyOf(skey)
	if err != nil {
		return nil, err
	}
	client := w.cfg.MirrorClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	mr := &Mirror{w: w, origin: origin, url: strings.TrimSuffix(w.cfg.Mirror, "/"), dir: filepath.Join(w.cfg.Dir, "mirror"),
		client: client, signer: s, vkey: vkey, verifiers: note.VerifierList(vs...), kick: make(chan struct{}, 1)}
	if err := os.MkdirAll(mr.dir, 0o700); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	b, err := os.ReadFile(mr.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("mirror state: %w", err)
	default:
		var st MirrorState
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("mirror state %s: %w", mr.statePath(), err)
		}
		if st.Origin != origin {
			return nil, fmt.Errorf("mirror state holds origin %q, not %q", st.Origin, origin)
		}
		mr.state = &st
	}
	mr.fetched = m.CounterVec("minecart_mirror_fetched_total", "Tiles and entry bundles the mirror fetched, by kind (tile, bundle).", "kind")
	mr.bytesIn = m.Counter("minecart_mirror_fetched_bytes_total", "Bytes of tiles and entry bundles the mirror fetched.")
	mr.size = m.Gauge("minecart_mirror_tree_size", "Tree size of the mirror checkpoint (the copy held in full and cosigned).")
	mr.rounds = m.CounterVec("minecart_mirror_rounds_total", "Mirror catch-up rounds, by outcome (ok, error).", "outcome")
	mr.duration = m.Histogram("minecart_mirror_round_seconds", "Time of a successful catch-up round (fetch, verify, store, cosign).",
		[]float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300})
	if mr.state != nil && mr.size != nil {
		mr.size.Set(float64(mr.state.Size))
	}
	return mr, nil
}

// Mirror is the witness's mirror (nil without mirror mode).
func (w *Witness) Mirror() *Mirror { return w.mirror }

// Run keeps the mirror caught up with the checkpoints the witness
// cosigns until ctx is done (nothing to do without mirror mode). A round
// that fails (the log unreachable, a tile not served yet, a tile that
// does not verify) is retried after 200ms, doubling up to 30s, and at
// once when a new checkpoint is cosigned.
func (w *Witness) Run(ctx context.Context) error {
	if w.mirror == nil {
		<-ctx.Done()
		return nil
	}
	return w.mirror.run(ctx)
}

func (m *Mirror) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Mirror) run(ctx context.Context) error {
	const minBackoff, maxBackoff = 200 * time.Millisecond, 30 * time.Second
	backoff := minBackoff
	var retry <-chan time.Time
	for {
		pending := m.w.State(m.origin)
		if pending != nil && pending.Size > m.Size() {
			if _, err := m.Sync(ctx, pending); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.w.cfg.Logger.Warn("mirror: catching up failed; retrying", "origin", m.origin, "size", pending.Size, "retry_in", backoff, "err", err)
				retry = time.After(backoff)
				backoff = min(2*backoff, maxBackoff)
			} else {
				backoff, retry = minBackoff, nil
				continue // a newer one may have come meanwhile
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-retry:
		}
	}
}

// Size is the tree size of the mirror checkpoint (0 before the first).
func (m *Mirror) Size() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.state == nil {
		return 0
	}
	return m.state.Size
}

// Checkpoint is the mirror checkpoint ("" before the first): the log's
// signed note with the mirror's cosignature.
func (m *Mirror) Checkpoint() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.state == nil {
		return ""
	}
	return m.state.Checkpoint
}

// VerifierKey is the mirror key's cosignature v1 verifier key.
func (m *Mirror) VerifierKey() string { return m.vkey }

// Name is the mirror key's name.
func (m *Mirror) Name() string { return m.signer.Name() }

func (m *Mirror) statePath() string { return filepath.Join(m.dir, "state.json") }

// SyncStats says what a round did.
type SyncStats struct {
	From, To      uint64
	Tiles         int   // tiles fetched
	Bundles       int   // entry bundles fetched
	Bytes         int64 // bytes fetched (uncompressed)
	FilesWritten  int
	ElapsedMillis int64
	FetchMillis   int64 // of which fetching
	StoreMillis   int64 // of which writing and fsyncing
}

// Sync brings the copy up to pending (a checkpoint the witness cosigned:
// signed by the log and consistent with every earlier one), verifies it
// and cosigns it with the mirror key. Run calls it; tests and benchmarks
// may too. Only one Sync runs at a time (the caller's job: Run is the
// only caller in a running witness).
func (m *Mirror) Sync(ctx context.Context, pending *LogState) (SyncStats, error) {
	start := time.Now()
	st, err := m.sync(ctx, pending)
	st.ElapsedMillis = time.Since(start).Milliseconds()
	if err != nil {
		m.rounds.WithLabelValues("error").Inc()
		return st, err
	}
	m.rounds.WithLabelValues("ok").Inc()
	m.duration.Observe(time.Since(start).Seconds())
	m.size.Set(float64(pending.Size))
	return st, nil
}

func (m *Mirror) sync(ctx context.Context, pending *LogState) (SyncStats, error) {
	old := m.Size()
	stats := SyncStats{From: old, To: pending.Size}
	if pending.Origin != m.origin || pending.Size <= old || len(pending.Root) != tlog.HashSize {
		return stats, fmt.Errorf("mirror: nothing to do for %q size %d (mirror size %d)", pending.Origin, pending.Size, old)
	}
	n, err := note.Open([]byte(pending.Checkpoint), m.verifiers)
	if err != nil {
		return stats, fmt.Errorf("mirror: pending checkpoint: %w", err)
	}
	newN := int64(pending.Size)
	tiles := tlog.NewTiles(tileHeight, int64(old), newN) // level by level, from 0
	t0 := time.Now()
	got, err := m.fetchAll(ctx, tiles)
	if err != nil {
		return stats, err
	}
	stats.FetchMillis = time.Since(t0).Milliseconds()
	data := make(map[tlog.Tile][]byte, len(tiles))
	bundles := make(map[tlog.Tile][]byte)
	for _, t := range tiles {
		b := got[t]
		stats.Tiles++
		stats.Bytes += int64(len(b))
		if len(b) != t.W*tlog.HashSize {
			return stats, fmt.Errorf("mirror: %s: %d bytes, want %d", tilePath(t), len(b), t.W*tlog.HashSize)
		}
		if err := m.checkPrefix(t, int64(old), b); err != nil {
			return stats, err
		}
		if t.L == 0 {
			dt := t
			dt.L = -1
			bundle := got[dt]
			stats.Bundles++
			stats.Bytes += int64(len(bundle))
			if err := checkBundle(t, bundle, b); err != nil {
				return stats, err
			}
			bundles[dt] = bundle
		} else {
			// Each new hash i is the root of the full tile below it,
			// fetched in this round (it became full after old).
			oldW := widthAt(t, int64(old))
			for i := oldW; i < t.W; i++ {
				below := tlog.Tile{H: tileHeight, L: t.L - 1, N: t.N<<tileHeight + int64(i), W: 1 << tileHeight}
				bd, ok := data[below]
				if !ok {
					return stats, fmt.Errorf("mirror: %s: tile %s below it was not fetched", tilePath(t), tilePath(below))
				}
				if got := fold(bd); !bytes.Equal(got[:], b[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
					return stats, fmt.Errorf("mirror: %s: hash %d is not the root of %s", tilePath(t), i, tilePath(below))
				}
			}
		}
		data[t] = b
	}
	// The root from the tiles (fetched now, or in the copy).
	root, err := tlog.TreeHash(newN, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			t := tlog.TileForIndex(tileHeight, x)
			b, ok := data[widest(data, t)]
			if !ok {
				var err error
				if b, err = m.readTile(t); err != nil {
					return nil, err
				}
			}
			t.W = len(b) / tlog.HashSize
			h, err := tlog.HashFromTile(t, b, x)
			if err != nil {
				return nil, err
			}
			out[i] = h
		}
		return out, nil
	}))
	if err != nil {
		return stats, fmt.Errorf("mirror: tree hash of size %d: %w", newN, err)
	}
	if !bytes.Equal(root[:], pending.Root) {
		return stats, fmt.Errorf("mirror: the tiles of size %d hash to %x, the checkpoint says %x", newN, root[:], pending.Root)
	}
	// Store: every file synced, then the directories, then the state.
	t1 := time.Now()
	dirs := map[string]bool{}
	type file struct {
		path string
		data []byte
	}
	var files []file
	for _, t := range tiles {
		files = append(files, file{m.filePath(t, t.W < 1<<tileHeight), data[t]})
		if t.L == 0 {
			dt := t
			dt.L = -1
			files = append(files, file{m.filePath(dt, dt.W < 1<<tileHeight), bundles[dt]})
		}
	}
	for _, f := range files {
		d := filepath.Dir(f.path)
		if !dirs[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return stats, fmt.Errorf("mirror: store: %w", err)
			}
			dirs[d] = true
		}
	}
	// Files are written and fsynced writers at a time: the journal
	// commits concurrent fsyncs together.
	errs := make(chan error, len(files))
	work := make(chan file)
	var wg sync.WaitGroup
	for range min(fetchers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				errs <- writeFileSynced(f.path, f.data)
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return stats, fmt.Errorf("mirror: store: %w", err)
		}
	}
	stats.FilesWritten = len(files)
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return stats, fmt.Errorf("mirror: store: %w", err)
		}
	}
	stats.StoreMillis = time.Since(t1).Milliseconds()
	signed, err := note.Sign(n, m.signer)
	if err != nil {
		return stats, fmt.Errorf("mirror: cosign: %w", err)
	}
	next := &MirrorState{Origin: m.origin, Size: pending.Size, Root: pending.Root, Checkpoint: string(signed), UpdatedMs: m.w.cfg.Now().UnixMilli()}
	js, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return stats, err
	}
	if err := WriteFileAtomic(m.statePath(), append(js, '\n'), 0o600); err != nil {
		return stats, fmt.Errorf("mirror: store state: %w", err)
	}
	m.mu.Lock()
	m.state = next
	m.mu.Unlock()
	// Partial files superseded by a full one are left: serving prefers
	// the full file.
	m.w.cfg.Logger.Info("mirror: caught up", "origin", m.origin, "from", old, "to", pending.Size, "tiles", stats.Tiles, "bundles", stats.Bundles, "bytes", stats.Bytes)
	return stats, nil
}

// widest is the tile of t's level and index in data (NewTiles lists one
// width per level and index), or t if there is none.
func widest(data map[tlog.Tile][]byte, t tlog.Tile) tlog.Tile {
	for c := range data {
		if c.L == t.L && c.N == t.N && c.W >= t.W {
			return c
		}
	}
	return t
}

// widthAt is how many hashes of tile t's index and level exist in a tree
// of size n (256 if full).
func widthAt(t tlog.Tile, n int64) int {
	count := n >> (tileHeight * t.L)
	switch {
	case count>>tileHeight > t.N:
		return 1 << tileHeight
	case count>>tileHeight == t.N:
		return int(count - t.N<<tileHeight)
	}
	return 0
}

// checkPrefix checks that what the copy already holds of tile t (its
// width at size old) is unchanged in b.
func (m *Mirror) checkPrefix(t tlog.Tile, old int64, b []byte) error {
	oldW := widthAt(t, old)
	if oldW == 0 {
		return nil
	}
	prev, err := m.readTile(tlog.Tile{H: t.H, L: t.L, N: t.N, W: oldW})
	if err != nil {
		return err
	}
	if !bytes.Equal(prev[:oldW*tlog.HashSize], b[:oldW*tlog.HashSize]) {
		return fmt.Errorf("mirror: %s: its first %d hashes differ from the copy's (the log rewrote its history)", tilePath(t), oldW)
	}
	return nil
}

// checkBundle checks an entry bundle against its level-0 tile: exactly
// W entries, each hashing (RFC 6962 leaf hash) to its hash.
func checkBundle(t tlog.Tile, bundle, hashes []byte) error {
	entries, err := splitBundle(bundle)
	if err != nil {
		return fmt.Errorf("mirror: entry bundle %d: %w", t.N, err)
	}
	if len(entries) != t.W {
		return fmt.Errorf("mirror: entry bundle %d: %d entries, want %d", t.N, len(entries), t.W)
	}
	for i, e := range entries {
		if h := tlog.RecordHash(e); !bytes.Equal(h[:], hashes[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			return fmt.Errorf("mirror: entry bundle %d: entry %d does not hash to tile 0/%d's hash %d", t.N, i, t.N, i)
		}
	}
	return nil
}

// splitBundle splits an entry bundle into its entries (u16 BE length +
// bytes each).
func splitBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("truncated length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, errors.New("truncated entry")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// fold is the Merkle root of a full tile's 256 hashes.
func fold(b []byte) tlog.Hash {
	hs := make([]tlog.Hash, len(b)/tlog.HashSize)
	for i := range hs {
		copy(hs[i][:], b[i*tlog.HashSize:])
	}
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = tlog.NodeHash(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0]
}

// tilePath is the C2SP path of a tile after the prefix: tile/<L>/<N>[.p/<W>],
// or tile/entries/<N>[.p/<W>] for L = -1 (x/mod's "tile/8/..." and
// "data", respelled).
func tilePath(t tlog.Tile) string {
	p := t.Path() // tile/8/<L or data>/<N>[.p/<W>]
	p = "tile/" + strings.TrimPrefix(p, "tile/"+strconv.Itoa(tileHeight)+"/")
	if t.L == -1 {
		p = "tile/entries/" + strings.TrimPrefix(p, "tile/data/")
	}
	return p
}

// parsePath parses a C2SP tile path (after "tile/") in its canonical
// spelling only.
func parsePath(p string) (tlog.Tile, error) {
	q := p
	if rest, ok := strings.CutPrefix(p, "entries/"); ok {
		q = "data/" + rest
	}
	t, err := tlog.ParseTilePath("tile/" + strconv.Itoa(tileHeight) + "/" + q)
	if err != nil || tilePath(t) != "tile/"+p {
		return tlog.Tile{}, fmt.Errorf("tile path %q: not a canonical tlog-tiles path", p)
	}
	return t, nil
}

// filePath is where the copy keeps tile t (partial: its widest).
func (m *Mirror) filePath(t tlog.Tile, partial bool) string {
	full := t
	full.W = 1 << tileHeight
	p := filepath.Join(m.dir, filepath.FromSlash(tilePath(full)))
	if partial {
		p += ".p"
	}
	return p
}

// readTile reads tile t (its first t.W hashes, or entries for a bundle)
// from the copy: the full file, else the partial one if wide enough.
func (m *Mirror) readTile(t tlog.Tile) ([]byte, error) {
	for _, partial := range []bool{false, true} {
		b, err := os.ReadFile(m.filePath(t, partial))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if t.L == -1 {
			return bundlePrefix(b, t.W)
		}
		if len(b) < t.W*tlog.HashSize {
			continue
		}
		return b[:t.W*tlog.HashSize], nil
	}
	return nil, fmt.Errorf("mirror: %s: not in the copy: %w", tilePath(t), os.ErrNotExist)
}

// bundlePrefix is the first w entries of a bundle.
func bundlePrefix(b []byte, w int) ([]byte, error) {
	off := 0
	for i := 0; i < w; i++ {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("mirror: stored bundle holds %d entries, want %d: %w", i, w, os.ErrNotExist)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		if off > len(b) {
			return nil, errors.New("mirror: stored bundle truncated")
		}
	}
	return b[:off], nil
}

// fetchers is how many tiles and bundles a round fetches at once.
const fetchers = 8

// fetchAll fetches tiles and, for each level-0 one, its entry bundle
// (key: the tile with L = -1), fetchers at a time.
func (m *Mirror) fetchAll(ctx context.Context, tiles []tlog.Tile) (map[tlog.Tile][]byte, error) {
	var jobs []tlog.Tile
	for _, t := range tiles {
		jobs = append(jobs, t)
		if t.L == 0 {
			dt := t
			dt.L = -1
			jobs = append(jobs, dt)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(map[tlog.Tile][]byte, len(jobs))
	var mu sync.Mutex
	var first error
	next := make(chan tlog.Tile)
	var wg sync.WaitGroup
	for range min(fetchers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				limit := t.W * tlog.HashSize
				if t.L == -1 {
					limit = maxBundle
				}
				b, err := m.fetch(ctx, t, limit)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				out[t] = b
				mu.Unlock()
			}
		}()
	}
	for _, t := range jobs {
		select {
		case next <- t:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetch GETs tile t (L = -1: its entry bundle) from the log.
func (m *Mirror) fetch(ctx context.Context, t tlog.Tile, limit int) ([]byte, error) {
	u := m.url + "/" + tilePath(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req) // Go's transport asks for and undoes gzip itself
	if err != nil {
		return nil, fmt.Errorf("mirror: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("mirror: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mirror: GET %s: %s: %s", u, resp.Status, clip(b))
	}
	if len(b) > limit {
		return nil, fmt.Errorf("mirror: GET %s: over %d bytes", u, limit)
	}
	kind := "tile"
	if t.L == -1 {
		kind = "bundle"
	}
	m.fetched.WithLabelValues(kind).Inc()
	m.bytesIn.Add(float64(len(b)))
	return b, nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}

// writeFileSynced writes path through a synced temporary file renamed
// over it; the caller syncs the directory (once for many files).
func writeFileSynced(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (m *Mirror) serveCheckpoint(rw http.ResponseWriter, _ *http.Request) {
	cp := m.Checkpoint()
	rw.Header().Set("Cache-Control", "no-store")
	if cp == "" {
		http.Error(rw, "the mirror holds no checkpoint yet", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = rw.Write([]byte(cp))
}

func (m *Mirror) serveTile(rw http.ResponseWriter, r *http.Request) {
	t, err := parsePath(r.PathValue("path"))
	if err != nil {
		rw.Header().Set("Cache-Control", "no-store")
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	lvl := t
	if lvl.L == -1 {
		lvl.L = 0
	}
	if widthAt(lvl, int64(m.Size())) < t.W {
		rw.Header().Set("Cache-Control", "no-store")
		http.Error(rw, fmt.Sprintf("%s: beyond the mirror checkpoint (size %d)", tilePath(t), m.Size()), http.StatusNotFound)
		return
	}
	b, err := m.readTile(t)
	if err != nil {
		rw.Header().Set("Cache-Control", "no-store")
		m.w.cfg.Logger.Error("mirror: a tile within the mirror checkpoint is missing", "path", tilePath(t), "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = rw.Write(b)
}
