package chserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoPanicsSurviveEngine checks that after the engine connects, a Go nil
// dereference is still a recoverable panic (chDB installs ClickHouse's
// fatal-signal handlers, under which it would hang the process). It runs in
// a child process: the engine never loads into the test binary itself.
func TestGoPanicsSurviveEngine(t *testing.T) {
	if dir := os.Getenv("CHSERVER_SIGNAL_CHILD"); dir != "" {
		cfgFile, err := writeEngineConfig(dir + "/engine")
		if err != nil {
			fmt.Println("config:", err)
			os.Exit(2)
		}
		e, err := openEngine(dir, cfgFile)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		defer e.close()
		func() {
			defer func() { fmt.Println("recovered:", recover() != nil) }()
			var p *int
			_ = *p
		}()
		r, err := e.exec("SELECT 40 + 2", "TabSeparated")
		if err != nil {
			fmt.Println("query:", err)
			return
		}
		fmt.Printf("engine: %s", r.data)
		return
	}
	if _, err := os.Stat(LibraryPath()); err != nil {
		t.Skip("libchdb.so not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGoPanicsSurviveEngine$")
	cmd.Env = append(os.Environ(), "CHSERVER_SIGNAL_CHILD="+filepath.Join(t.TempDir(), "db"))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child hung after a nil dereference:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "recovered: true") || !strings.Contains(string(out), "engine: 42") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
