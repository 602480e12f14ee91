package stage

import (
	"bytes"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"time"

	"github.com/minecart/minecart/internal/cputime"
)

// probe is what a region of BenchmarkBackfill cost the process: CPU
// (user + system), minor page faults (first touches of fresh memory:
// the kernel maps and zeroes a page), collections, the collector's CPU
// and the bytes allocated on the heap.
type probe struct {
	cpu, gcCPU time.Duration
	minflt     int64
	gcs        uint64
	alloc      uint64
}

var probeMetrics = []rtmetrics.Sample{
	{Name: "/cpu/classes/gc/total:cpu-seconds"},
	{Name: "/gc/cycles/total:gc-cycles"},
	{Name: "/gc/heap/allocs:bytes"},
}

// probeNow reads the process's counters. The collector's CPU is the
// runtime's estimate (runtime/metrics), updated at each cycle's end.
func probeNow() probe {
	rtmetrics.Read(probeMetrics)
	return probe{
		cpu:    cputime.Self(),
		gcCPU:  time.Duration(probeMetrics[0].Value.Float64() * 1e9),
		gcs:    probeMetrics[1].Value.Uint64(),
		alloc:  probeMetrics[2].Value.Uint64(),
		minflt: minorFaults(),
	}
}

// since is the cost of the region that began at p0.
func (p probe) since(p0 probe) probe {
	return probe{cpu: p.cpu - p0.cpu, gcCPU: p.gcCPU - p0.gcCPU, minflt: p.minflt - p0.minflt, gcs: p.gcs - p0.gcs, alloc: p.alloc - p0.alloc}
}

func (p probe) minus(q probe) probe { return p.since(q) }

func (p probe) plus(q probe) probe {
	return probe{cpu: p.cpu + q.cpu, gcCPU: p.gcCPU + q.gcCPU, minflt: p.minflt + q.minflt, gcs: p.gcs + q.gcs, alloc: p.alloc + q.alloc}
}

// minorFaults is field 10 of /proc/self/stat (minflt, proc(5)); -1 where
// there is no /proc.
func minorFaults() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 8 {
		return -1
	}
	n, err := strconv.ParseInt(string(f[7]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
