package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"runtime"
	"testing"
	"time"
)

var bigLeaves = flag.Int("merkle.big", 10_000_000, "leaves of the tree in BenchmarkProofs10M")

// BenchmarkSHA256 is the baseline: bare SHA-256 of one 65-byte node input.
func BenchmarkSHA256(b *testing.B) {
	var buf [65]byte
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(buf[1:], uint64(i))
		_ = sha256.Sum256(buf[:])
	}
}

// BenchmarkAppend appends 150-byte entries (a leaf hash plus on average one
// node hash each).
func BenchmarkAppend(b *testing.B) {
	var tr Tree
	tr.Reserve(uint64(b.N))
	entry := make([]byte, 150)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(entry, uint64(i))
		tr.Append(entry)
	}
}

// BenchmarkProofs10M builds a tree of -merkle.big leaves (default 10^7),
// reports its memory per million leaves, and times inclusion proofs of
// random leaves in the full tree and consistency proofs between random
// sizes, against the bare SHA-256 rate measured in the same run.
func BenchmarkProofs10M(b *testing.B) {
	n := uint64(*bigLeaves)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	var tr Tree
	tr.Reserve(n)
	var leaf Hash
	for i := uint64(0); i < n; i++ {
		binary.BigEndian.PutUint64(leaf[:], i)
		tr.AppendHash(leaf)
	}
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Baseline: bare SHA-256 over node-sized inputs.
	var buf [65]byte
	const baseN = 1_000_000
	t0 := time.Now()
	for i := 0; i < baseN; i++ {
		binary.BigEndian.PutUint64(buf[1:], uint64(i))
		_ = sha256.Sum256(buf[:])
	}
	hashNs := float64(time.Since(t0).Nanoseconds()) / baseN

	b.ResetTimer()
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < b.N; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if _, err := tr.InclusionProof(x%n, n); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perProof := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	t1 := time.Now()
	const cons = 1000
	for i := 0; i < cons; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		first := 1 + x%(n-1)
		if _, err := tr.ConsistencyProof(first, n); err != nil {
			b.Fatal(err)
		}
	}
	consNs := float64(time.Since(t1).Nanoseconds()) / cons
	// A block's worth of proofs at once, as the ledger writer makes them.
	t2 := time.Now()
	const blocks, per = 100, 1000
	for i := uint64(0); i < blocks; i++ {
		first := n - (i+1)*per
		if _, err := tr.InclusionProofs(first, first+per-1, first+per); err != nil {
			b.Fatal(err)
		}
	}
	batchNs := float64(time.Since(t2).Nanoseconds()) / (blocks * per)
	b.ReportMetric(batchNs/1000, "us/inclusion-in-block")
	b.ReportMetric(perProof/1000, "us/inclusion")
	b.ReportMetric(consNs/1000, "us/consistency")
	b.ReportMetric(perProof/hashNs, "inclusion/sha256")
	b.ReportMetric(float64(tr.MemoryBytes())/float64(n)*1e6/(1<<20), "MiB/M-leaves")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n)*1e6/(1<<20), "heapMiB/M-leaves")
	b.ReportMetric(float64(n)/build.Seconds(), "leaves/s-build")
	b.ReportMetric(1e9/hashNs, "sha256/s")
}
