//go:build unix

package stage

import (
	"syscall"
	"time"
)

// cpuTime is the process's user + system CPU time so far (all threads:
// the garbage collector's work is in it), 0 where it cannot be read.
// Benchmarks report CPU per record next to wall time: on the shared
// machine wall time swings with the load, CPU much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
