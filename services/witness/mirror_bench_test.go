package witness_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// BenchmarkMirror: the cost of mirroring a book of MINECART_MIRROR_ENTRIES
// entries (default 1,000,000) from a proofs.Server over HTTP on loopback in
// one round (fetch every tile and bundle, verify, write with fsync,
// cosign), then of one catch-up round of 1,000 more entries. It reports
// the time, the bytes fetched and the bytes on disk per entry, and the
// ratio of the copy on disk to the canonical entries' size.
// `make bench-mirror` runs it once.
func BenchmarkMirror(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("MINECART_MIRROR_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	l := newTiledLog(b)
	for done := 0; done < n; done += 100_000 {
		l.add(min(100_000, n-done))
	}
	var entryBytes int64
	for _, blk := range l.queued {
		for _, raw := range blk.Entries {
			entryBytes += int64(len(raw))
		}
	}
	l.publish()
	for b.Loop() {
		dir := b.TempDir()
		w := newMirror(b, dir, l)
		if _, err := w.AddCheckpoint(l.request(0)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		st, err := w.Mirror().Sync(context.Background(), w.State(ledgertest.Origin))
		if err != nil {
			b.Fatal(err)
		}
		full := time.Since(start)
		var disk int64
		_ = filepath.WalkDir(filepath.Join(dir, "mirror"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fi, _ := d.Info()
				disk += fi.Size()
			}
			return nil
		})
		old := l.book.Size()
		l.add(1000)
		l.publish()
		if _, err := w.AddCheckpoint(l.request(old)); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		st2, err := w.Mirror().Sync(context.Background(), w.State(ledgertest.Origin))
		if err != nil {
			b.Fatal(err)
		}
		inc := time.Since(start)
		b.ReportMetric(float64(n), "entries")
		b.ReportMetric(full.Seconds(), "s/full-copy")
		b.ReportMetric(float64(n)/full.Seconds(), "entries/s")
		b.ReportMetric(float64(st.Bytes)/float64(n), "fetched-B/entry")
		b.ReportMetric(float64(disk)/float64(n), "disk-B/entry")
		b.ReportMetric(float64(disk)/float64(entryBytes), "disk/entries-ratio")
		b.ReportMetric(float64(st.FilesWritten), "files")
		b.ReportMetric(float64(inc.Milliseconds()), "ms/catch-up-1000")
		b.ReportMetric(float64(st2.Tiles+st2.Bundles), "fetches/catch-up-1000")
		b.ReportMetric(float64(st.FetchMillis)/1000, "s/fetch")
		b.ReportMetric(float64(st.StoreMillis)/1000, "s/store")
		b.Logf("full copy of %d entries (%d B canonical): %v (fetch %d ms, store %d ms), %d tiles + %d bundles, %d B fetched, %d B on disk in %d files; catch-up of 1,000: %v, %d fetches",
			n, entryBytes, full, st.FetchMillis, st.StoreMillis, st.Tiles, st.Bundles, st.Bytes, disk, st.FilesWritten, inc, st2.Tiles+st2.Bundles)
	}
}
