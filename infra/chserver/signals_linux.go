//go:build linux && (amd64 || arm64)

package chserver

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as the Linux rt_sigaction syscall
// takes it on amd64/arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// fatalSignals are the handlers chDB replaces at connect (see
// /work/shared/clickhouse.md): with ClickHouse's handler installed, a Go nil
// dereference hangs the process instead of panicking.
var fatalSignals = []unix.Signal{unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS,
	unix.SIGFPE, unix.SIGSEGV, unix.SIGTSTP, unix.SIGSYS}

// withSignalsRestored runs f and puts back the process's handlers of the
// fatal signals that f replaced, so Go's runtime keeps turning faults into
// panics (recoverable in net/http handlers) or clean crashes.
func withSignalsRestored(f func()) {
	saved := make([]kernelSigaction, len(fatalSignals))
	ok := make([]bool, len(fatalSignals))
	for i, s := range fatalSignals {
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), 0,
			uintptr(unsafe.Pointer(&saved[i])), 8, 0, 0)
		ok[i] = errno == 0
	}
	f()
	for i, s := range fatalSignals {
		if ok[i] {
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&saved[i])), 0, 8, 0, 0)
		}
	}
}
