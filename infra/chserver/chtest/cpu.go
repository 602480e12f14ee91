package chtest

import (
	"time"

	"github.com/minecart/minecart/internal/cputime"
)

// CPU is the CPU time (user + system) the server process has used so far,
// read from /proc (Linux; elsewhere an error). Benchmarks on a shared
// machine compare paths by the CPU they cost, which the other load on
// the cores moves far less than their wall time: the engine runs in this
// process, so a client path's cost is its own process's CPU
// (cputime.Self) plus the server's over the same span.
func (s *Server) CPU() (time.Duration, error) {
	return cputime.Proc(s.cmd.Process.Pid)
}
