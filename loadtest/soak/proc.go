package soak

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/minecart/minecart/internal/cputime"
)

// Usage is one process tree's resources at one moment, read from /proc.
type Usage struct {
	RSS int64   // resident bytes, the process and its descendants
	CPU float64 // user + system CPU seconds since each started
}

var pageSize = int64(os.Getpagesize())

// procTable is one pass over /proc: every live process's parent, RSS and
// CPU time.
type procTable struct {
	parent map[int]int
	usage  map[int]Usage
}

// readProcs reads /proc once. Processes that exit during the pass are
// skipped.
func readProcs() (*procTable, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("reading /proc: %w", err)
	}
	pt := &procTable{parent: map[int]int{}, usage: map[int]Usage{}}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, u, err := readProc(pid)
		if err != nil {
			continue
		}
		pt.parent[pid] = ppid
		pt.usage[pid] = u
	}
	return pt, nil
}

// readProc reads one process's parent, CPU time (/proc/<pid>/stat) and
// resident set (/proc/<pid>/statm).
func readProc(pid int) (ppid int, u Usage, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, u, err
	}
	ppid, cpu, err := cputime.ParseStat(b)
	if err != nil {
		return 0, u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	m, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, u, err
	}
	f := strings.Fields(string(m))
	if len(f) < 2 {
		return 0, u, fmt.Errorf("/proc/%d/statm: %q", pid, m)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, u, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return ppid, Usage{RSS: pages * pageSize, CPU: cpu.Seconds()}, nil
}

// tree sums the usage of pid and its descendants (`minecart clickhouse`
// and `minecart run` may start children); self: pid alone.
func (pt *procTable) tree(pid int, self bool) Usage {
	u := pt.usage[pid]
	if self {
		return u
	}
	children := map[int][]int{}
	for c, p := range pt.parent {
		children[p] = append(children[p], c)
	}
	stack := append([]int(nil), children[pid]...)
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		cu := pt.usage[c]
		u.RSS += cu.RSS
		u.CPU += cu.CPU
		stack = append(stack, children[c]...)
	}
	return u
}
