// Package cputime reads the CPU time processes have used: this process's
// (getrusage) and any process's from /proc/<pid>/stat. Benchmarks on a
// shared machine compare paths by the CPU they cost, which the other load
// on the cores moves far less than their wall time; the soak harness
// samples its processes' CPU with it.
package cputime

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is USER_HZ, the unit of /proc/<pid>/stat's times (100 on
// every Linux architecture minecart runs on).
const ClockTick = 100

// Proc is the CPU time (user + system) process pid has used so far, read
// from /proc (Linux; elsewhere an error).
func Proc(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	_, cpu, err := ParseStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return cpu, nil
}

// ParseStat returns the parent pid and utime + stime of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses, so fields are counted after its last ')': state is
// field 3, ppid 4, utime 14, stime 15 (proc(5)).
func ParseStat(b []byte) (ppid int, cpu time.Duration, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("ppid: %w", err)
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return ppid, time.Duration(ut+st) * (time.Second / ClockTick), nil
}
