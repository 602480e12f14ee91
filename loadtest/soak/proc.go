package soak

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is one process tree's resources at one moment, read from /proc.
type Usage struct {
	RSS int64   // resident bytes, the process and its descendants
	CPU float64 // user + system CPU seconds since each started
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times (100 on
// every Linux architecture Go supports).
const clockTick = 100

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
	ppid, cpu, err := parseStat(b)
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
	return ppid, Usage{RSS: pages * pageSize, CPU: cpu}, nil
}

// parseStat returns the parent pid and utime+stime in seconds of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses, so fields are counted after its last
// ')': state is field 3, ppid 4, utime 14, stime 15 (proc(5)).
func parseStat(b []byte) (ppid int, cpu float64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return ppid, float64(ut+st) / clockTick, nil
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
