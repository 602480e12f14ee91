package proofs

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/minecart/minecart/services/ledger"
)

// The book as C2SP tlog-tiles (c2sp.org/tlog-tiles), under a prefix
// (/ledger/ in Handler):
//
//	GET <prefix>/checkpoint                   the signed checkpoint of the head (text/plain; charset=utf-8, no-store)
//	GET <prefix>/tile/<L>/<N>[.p/<W>]         Merkle tree tiles: hashes of level 8L, 256 a full tile, W a partial one
//	GET <prefix>/tile/entries/<N>[.p/<W>]     entry bundles: the canonical entries, each as u16 BE length + bytes
//
// Tiles and bundles never change once they exist (a partial tile of width
// W is the same W hashes forever), so they are served with
// Cache-Control: public, max-age=31536000, immutable. Everything comes
// from the Server's verified copy of the book (the blocks topic), so any
// replica serves the same bytes.

// TileWidth is the number of hashes of a full tile and entries of a full
// bundle.
const TileWidth = 256

// ImmutableCache is the Cache-Control of tiles and entry bundles.
const ImmutableCache = "public, max-age=31536000, immutable"

// maxTileLevel: a tile of level 8 or more would span 2^64 entries.
const maxTileLevel = 63

// ErrEntryTooLong marks an entry bundle that cannot be encoded: tlog-tiles
// bundles prefix each entry with a 16-bit length.
var ErrEntryTooLong = errors.New("ledger tiles: entry longer than 65,535 bytes")

// tileRef is a parsed tile or bundle path.
type tileRef struct {
	entries bool   // an entry bundle
	level   uint   // L (tiles only)
	index   uint64 // N
	width   uint   // W: 1..255 for a partial tile, 256 for a full one
}

// parseTilePath parses what follows "<prefix>/tile/": "<L>/<N>[.p/<W>]" or
// "entries/<N>[.p/<W>]", in the one canonical spelling of the spec (no
// leading zeroes in L and W, N in 3-digit elements all but the last
// prefixed with "x", as few elements as the value needs).
func parseTilePath(p string) (tileRef, error) {
	var ref tileRef
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return ref, fmt.Errorf("tile path %q: want <L>/<N>[.p/<W>] or entries/<N>[.p/<W>]", p)
	}
	if parts[0] == "entries" {
		ref.entries = true
	} else {
		l, err := strconv.ParseUint(parts[0], 10, 8)
		if err != nil || l > maxTileLevel || strconv.FormatUint(l, 10) != parts[0] {
			return ref, fmt.Errorf("tile path %q: level %q: want 0..63 in decimal", p, parts[0])
		}
		ref.level = uint(l)
	}
	elems := parts[1:]
	ref.width = TileWidth
	if n := len(elems); n >= 2 && strings.HasSuffix(elems[n-2], ".p") {
		w, err := strconv.ParseUint(elems[n-1], 10, 8)
		if err != nil || w == 0 || w >= TileWidth || strconv.FormatUint(w, 10) != elems[n-1] {
			return ref, fmt.Errorf("tile path %q: width %q: want 1..255 in decimal", p, elems[n-1])
		}
		ref.width = uint(w)
		elems = append(elems[:n-2:n-2], strings.TrimSuffix(elems[n-2], ".p"))
	}
	if len(elems) > 6 { // 10^18 > any index of a tree of < 2^64 leaves
		return ref, fmt.Errorf("tile path %q: index too long", p)
	}
	for i, e := range elems {
		digits := e
		if i < len(elems)-1 {
			if !strings.HasPrefix(e, "x") {
				return ref, fmt.Errorf("tile path %q: index element %q: want x + 3 digits", p, e)
			}
			digits = e[1:]
		}
		if len(digits) != 3 || strings.Trim(digits, "0123456789") != "" {
			return ref, fmt.Errorf("tile path %q: index element %q: want 3 digits", p, e)
		}
		d, _ := strconv.ParseUint(digits, 10, 64)
		ref.index = ref.index*1000 + d
	}
	if got := ref.path(); got != p {
		return ref, fmt.Errorf("tile path %q: not canonical (want %q)", p, got)
	}
	return ref, nil
}

// path is the canonical path of the tile after "<prefix>/tile/".
func (r tileRef) path() string {
	var b strings.Builder
	if r.entries {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.FormatUint(uint64(r.level), 10))
	}
	n := r.index
	var elems []string
	for {
		elems = append(elems, fmt.Sprintf("%03d", n%1000))
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		b.WriteByte('/')
		if i > 0 {
			b.WriteByte('x')
		}
		b.WriteString(elems[i])
	}
	if r.width < TileWidth {
		fmt.Fprintf(&b, ".p/%d", r.width)
	}
	return b.String()
}

// Tile returns the tile of level (tile level, 0..63) and index of width
// hashes (256: full; 1..255: partial), 32 bytes per hash, or an error
// wrapping ledger.ErrNotFound if the tree does not hold it yet.
func (s *Server) Tile(level uint, index uint64, width uint) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tile(nil, level, index, width)
}

// tile appends the tile to dst. The caller holds s.mu.
func (s *Server) tile(dst []byte, level uint, index uint64, width uint) ([]byte, error) {
	if width == 0 || width > TileWidth || level > maxTileLevel {
		return nil, badRequest("tile %d/%d width %d: out of range", level, index, width)
	}
	size := s.book.Size()
	var count uint64 // complete hashes at tree level 8*level
	if level < 8 {
		count = size >> (8 * level)
	}
	if index > count/TileWidth || count-index*TileWidth < uint64(width) {
		return nil, notFound("tile %d/%d of width %d: the tree of size %d has %d hashes at that level", level, index, width, size, count)
	}
	out, err := s.book.Tree().AppendNodes(dst, 8*level, index*TileWidth, uint64(width))
	if err != nil {
		return nil, fmt.Errorf("ledger tiles: %w", err)
	}
	return out, nil
}

// EntryBundle returns the entry bundle of index of width entries (256:
// full; 1..255: partial): each entry's canonical bytes after their length
// as a big-endian uint16. Errors wrap ledger.ErrNotFound (not in the book
// yet) or ErrEntryTooLong.
func (s *Server) EntryBundle(index uint64, width uint) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bundle(nil, index, width)
}

// bundle appends the entry bundle to dst. The caller holds s.mu.
func (s *Server) bundle(dst []byte, index uint64, width uint) ([]byte, error) {
	if width == 0 || width > TileWidth {
		return nil, badRequest("entry bundle %d width %d: out of range", index, width)
	}
	size := s.book.Size()
	if index > size/TileWidth || size-index*TileWidth < uint64(width) {
		return nil, notFound("entry bundle %d of width %d: the book has %d entries", index, width, size)
	}
	first := index * TileWidth
	var start uint64
	if first > 0 {
		start = s.ends[first-1]
	}
	if dst == nil {
		dst = make([]byte, 0, s.ends[first+uint64(width)-1]-start+2*uint64(width))
	}
	for i := first; i < first+uint64(width); i++ {
		end := s.ends[i]
		if end-start > 0xffff {
			return nil, fmt.Errorf("entry bundle %d: leaf %d has %d bytes: %w", index, i, end-start, ErrEntryTooLong)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(end-start))
		dst = append(dst, s.data[start:end]...)
		start = end
	}
	return dst, nil
}

// Checkpoint is the published checkpoint (tlog-tiles <prefix>/checkpoint):
// with a witness policy, the newest one cosigned by its quorum
// (AddCosigned); without, the signed checkpoint of the verified head. An
// error wrapping ledger.ErrNotFound before there is one.
func (s *Server) Checkpoint() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cfg.Policy != nil {
		if s.cosigned == "" {
			return "", notFound("no checkpoint cosigned by the witness quorum yet")
		}
		return s.cosigned, nil
	}
	if s.book.Height() == 0 {
		return "", notFound("no checkpoint: the book has no block yet")
	}
	return s.book.Checkpoint(), nil
}

func (s *Server) serveCheckpoint(w http.ResponseWriter, _ *http.Request) {
	cp, err := s.Checkpoint()
	if err != nil {
		tileError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // mutable: the head moves
	_, _ = w.Write([]byte(cp))
}

func (s *Server) serveTile(w http.ResponseWriter, r *http.Request) {
	ref, err := parseTilePath(r.PathValue("path"))
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var body []byte
	if ref.entries {
		body, err = s.EntryBundle(ref.index, ref.width)
	} else {
		body, err = s.Tile(ref.level, ref.index, ref.width)
	}
	if err != nil {
		tileError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", ImmutableCache)
	if ref.entries {
		h.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = s.gzipped(ref, body)
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// maxGzipCache bounds the cache of compressed full entry bundles (~10 KB
// each): when full, it is emptied.
const maxGzipCache = 4096

// gzipped is the gzip of an entry bundle; full bundles never change, so
// their compressed form is cached.
func (s *Server) gzipped(ref tileRef, body []byte) []byte {
	full := ref.width == TileWidth
	if full {
		s.gzMu.Lock()
		z, ok := s.gz[ref.index]
		s.gzMu.Unlock()
		if ok {
			return z
		}
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if full {
		s.gzMu.Lock()
		if s.gz == nil || len(s.gz) >= maxGzipCache {
			s.gz = make(map[uint64][]byte)
		}
		s.gz[ref.index] = buf.Bytes()
		s.gzMu.Unlock()
	}
	return buf.Bytes()
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip (not
// with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// tileError answers a tile, bundle or checkpoint request that failed:
// 404 for what the book does not hold yet, 400 for what can never exist,
// 500 for a bundle that cannot be encoded. Errors are never cached.
func tileError(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}
