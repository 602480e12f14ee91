package cputime

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ppid       int
		cpu        time.Duration
		err        bool
	}{
		{"plain", "42 (minecart) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 10", 7, 3 * time.Second, false},
		{"name with spaces and parens", "42 (a) b (c)) R 1 42 42 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 1, 30 * time.Millisecond, false},
		{"no name", "42 minecart S 7", 0, 0, true},
		{"truncated", "42 (minecart) S 7 42", 0, 0, true},
		{"bad utime", "42 (x) S 7 42 42 0 -1 0 0 0 0 0 x 2 0", 0, 0, true},
		{"bad ppid", "42 (x) S y 42 42 0 -1 0 0 0 0 0 1 2 0", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ppid, cpu, err := ParseStat([]byte(tc.line))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if !tc.err && (ppid != tc.ppid || cpu != tc.cpu) {
				t.Fatalf("ppid %d cpu %v, want %d %v", ppid, cpu, tc.ppid, tc.cpu)
			}
		})
	}
}

// Burning CPU moves both readings of this process; /proc's has a 10 ms
// resolution.
func TestSelfAndProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	s0 := Self()
	p0, err := Proc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for Self()-s0 < 50*time.Millisecond {
		x++
	}
	p1, err := Proc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p1 <= p0 || Self() <= s0 {
		t.Fatalf("no CPU seen: self %v -> %v, proc %v -> %v (%d spins)", s0, Self(), p0, p1, x)
	}
	if _, err := Proc(-1); err == nil {
		t.Fatal("pid -1 read")
	}
}
