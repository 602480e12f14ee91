// Package chtest starts the embedded ClickHouse server (infra/chserver) in a
// child process for tests, as `minecart run` does in production: chDB takes
// over fatal-signal handlers and allows one session per process, so it never
// runs inside a test binary.
package chtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds infra/chserver/cmd/chserver once per test binary, into one
// place per source tree under the temporary directory (built to a private name and
// renamed, so parallel test binaries never see a half-written file; go's
// build cache makes the rebuild cheap).
func binary() (string, error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		pkgDir := filepath.Join(filepath.Dir(file), "..", "cmd", "chserver")
		// One place per source tree: worktrees of other branches build
		// their own server, which must not replace this one's.
		tree := sha256.Sum256([]byte(pkgDir))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("minecart-chserver-%d-%x", os.Getuid(), tree[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp, err := os.CreateTemp(dir, "build-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
		cmd.Dir = pkgDir
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("go build chserver: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "chserver")
		if err := os.Rename(tmp.Name(), binPath); err != nil {
			os.Remove(tmp.Name())
			buildErr = err
		}
	})
	return binPath, buildErr
}

// Server is a running chserver child process. Its users (in
// DataDir/users.json, kept across restarts) are Admin, Writer and Analyst,
// one of each role.
type Server struct {
	Addr    string // host:port of the HTTP interface
	DataDir string
	Admin   chserver.User // role admin: DDL of tests, DROP and TRUNCATE
	Writer  chserver.User // role writer: what the sink and migrations need
	Analyst chserver.User // role readonly
	cmd     *exec.Cmd
	waitErr chan error
	stderr  *strings.Builder
	mu      sync.Mutex
	stop    sync.Once
	stopErr error
}

// Start runs a server on a free port with its data in a fresh temporary
// directory, and stops it when the test ends. It skips the test when
// libchdb.so is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartDir(t, t.TempDir())
}

// StartDir is Start with a given data directory (to restart on old data).
func StartDir(t testing.TB, dataDir string) *Server {
	t.Helper()
	if _, err := os.Stat(chserver.LibraryPath()); err != nil {
		t.Skipf("libchdb.so not installed (infra/chdb/install.sh): %v", err)
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := startProcess(bin, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("chserver stop: %v", err)
		}
	})
	return s
}

// Run starts a server with its data in dataDir outside a test (TestMain,
// benchmarks); the caller must Stop it. It returns chserver.ErrNoLibrary
// when libchdb.so is not installed.
func Run(dataDir string) (*Server, error) {
	if _, err := os.Stat(chserver.LibraryPath()); err != nil {
		return nil, fmt.Errorf("%w: %v", chserver.ErrNoLibrary, err)
	}
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	return startProcess(bin, dataDir)
}

func startProcess(bin, dataDir string) (*Server, error) {
	return startAt(bin, dataDir, "127.0.0.1:0")
}

// Restart stops the server and starts it again on the same address and
// data directory (tests of clients riding out an outage); the caller stops
// the returned server. Start may have to
// wait for the port; it tries for up to 10 s.
func (s *Server) Restart() (*Server, error) {
	if err := s.Stop(); err != nil {
		return nil, err
	}
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	var last error
	for i := 0; i < 50; i++ {
		n, err := startAt(bin, s.DataDir, s.Addr)
		if err == nil {
			return n, nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return nil, last
}

// UsersFile is where a test server's users are kept.
func UsersFile(dataDir string) string { return filepath.Join(dataDir, "users.json") }

// testUsers reads the users of dataDir, or creates them.
func testUsers(dataDir string) ([]chserver.User, error) {
	path := UsersFile(dataDir)
	if _, err := os.Stat(path); err == nil {
		return chserver.ReadUsersFile(path)
	}
	users := []chserver.User{
		{Name: "admin", Password: chserver.NewPassword(), Role: chserver.RoleAdmin},
		{Name: "writer", Password: chserver.NewPassword(), Role: chserver.RoleWriter},
		{Name: "analyst", Password: chserver.NewPassword(), Role: chserver.RoleReadonly},
	}
	return users, chserver.WriteUsersFile(path, users)
}

func startAt(bin, dataDir, addr string) (*Server, error) {
	users, err := testUsers(dataDir)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--addr", addr, "--data-dir", dataDir, "--users-file", UsersFile(dataDir))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &Server{DataDir: dataDir, cmd: cmd, waitErr: make(chan error, 1), stderr: &strings.Builder{}}
	for _, u := range users {
		switch u.Role {
		case chserver.RoleAdmin:
			s.Admin = u
		case chserver.RoleWriter:
			s.Writer = u
		case chserver.RoleReadonly:
			s.Analyst = u
		}
	}
	cmd.Stderr = lockedWriter{s}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				listening <- a
			}
		}
		s.waitErr <- cmd.Wait()
	}()
	select {
	case s.Addr = <-listening:
		return s, nil
	case err := <-s.waitErr:
		return nil, fmt.Errorf("chserver exited: %v\n%s", err, s.Stderr())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("chserver did not start in 60s")
	}
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

// Stderr is what the server logged so far.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// URL is the server's base URL with the admin's credentials,
// http://admin:PASSWORD@host:port (net/http sends them as Basic
// authentication).
func (s *Server) URL() string {
	return "http://" + url.UserPassword(s.Admin.Name, s.Admin.Password).String() + "@" + s.Addr
}

// BaseURL is the server's base URL without credentials.
func (s *Server) BaseURL() string { return "http://" + s.Addr }

// DSN is a clickhouse-go DSN for the server over HTTP, as the admin.
func (s *Server) DSN() string { return s.Admin.DSN(s.Addr, "default") }

// WriterDSN is DSN as the writer (the sink's and the migrations' user).
func (s *Server) WriterDSN() string { return s.Writer.DSN(s.Addr, "default") }

// AnalystDSN is DSN as the readonly analyst.
func (s *Server) AnalystDSN() string { return s.Analyst.DSN(s.Addr, "default") }

// Stop sends SIGTERM and waits for a clean exit (SIGKILL after 30 s).
// Calling it twice is fine.
func (s *Server) Stop() error {
	s.stop.Do(func() { s.stopErr = s.terminate() })
	return s.stopErr
}

func (s *Server) terminate() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-s.waitErr:
		if err != nil {
			return fmt.Errorf("%v\n%s", err, s.Stderr())
		}
		return nil
	case <-ctx.Done():
		s.cmd.Process.Kill()
		return errors.New("chserver did not stop in 30s; killed")
	}
}
