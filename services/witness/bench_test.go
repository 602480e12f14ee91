package witness_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minecart/minecart/services/witness"
)

// BenchmarkAddCheckpoint: cosigning latency of one add-checkpoint (parse,
// the log's signature, a consistency proof of a tree of ~10^4 leaves, the
// state written with two fsyncs, the cosignature), in process and over
// HTTP on loopback, with the fsyncs' share (bare WriteFileAtomic of the
// same size) for the ratio.
func BenchmarkAddCheckpoint(b *testing.B) {
	const n = 200
	l := newLog(b, 1)
	l.grow(10_000, "v")
	first := l.request(0)
	var reqs [][]byte
	for i := 0; i < n; i++ {
		old := l.book.Size()
		l.grow(10, "v")
		reqs = append(reqs, l.request(old))
	}
	fresh := func() *witness.Witness {
		w := newWitness(b, b.TempDir(), l)
		if _, err := w.AddCheckpoint(first); err != nil {
			b.Fatal(err)
		}
		return w
	}
	b.Run("in-process", func(b *testing.B) {
		w := fresh()
		k := 0
		for b.Loop() {
			if k == n {
				b.StopTimer()
				w, k = fresh(), 0
				b.StartTimer()
			}
			if _, err := w.AddCheckpoint(reqs[k]); err != nil {
				b.Fatal(err)
			}
			k++
		}
	})
	b.Run("http", func(b *testing.B) {
		w := fresh()
		hs := httptest.NewServer(w.Handler())
		defer hs.Close()
		k := 0
		for b.Loop() {
			if k == n {
				b.StopTimer()
				hs.Close()
				w, k = fresh(), 0
				hs = httptest.NewServer(w.Handler())
				b.StartTimer()
			}
			resp, err := http.Post(hs.URL+"/add-checkpoint", "text/plain", bytes.NewReader(reqs[k]))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.Status)
			}
			k++
		}
	})
	b.Run("fsync-only", func(b *testing.B) {
		dir := b.TempDir()
		data := bytes.Repeat([]byte("x"), 700)
		for b.Loop() {
			if err := witness.WriteFileAtomic(dir+"/s.json", data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	})
}
