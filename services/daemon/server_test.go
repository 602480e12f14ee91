package daemon

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServerDefaults: NewServer sets the four timeouts and the header
// bound; Group.Serve sets the ones a server left zero and keeps the others.
func TestServerDefaults(t *testing.T) {
	srv := NewServer("127.0.0.1:0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadTimeout != DefaultReadTimeout ||
		srv.WriteTimeout != DefaultWriteTimeout || srv.IdleTimeout != DefaultIdleTimeout || srv.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("NewServer: %+v", srv)
	}
	for _, d := range []time.Duration{DefaultReadHeaderTimeout, DefaultReadTimeout, DefaultWriteTimeout, DefaultIdleTimeout} {
		if d <= 0 {
			t.Fatalf("a default timeout is %v", d)
		}
	}
	g, _ := NewGroup(t.Context())
	bare := &http.Server{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler(), WriteTimeout: 7 * time.Minute}
	if err := g.Serve("bare", bare); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if bare.ReadHeaderTimeout != DefaultReadHeaderTimeout || bare.ReadTimeout != DefaultReadTimeout ||
		bare.IdleTimeout != DefaultIdleTimeout || bare.WriteTimeout != 7*time.Minute {
		t.Fatalf("Group.Serve: %+v", bare)
	}
}

// TestEveryServerThroughNewServer: no non-test file of the module builds
// an http.Server itself, so every HTTP server gets the defaults above. The
// one exception is infra/chserver (infrastructure imports no service
// package, docs/layout.md), which sets its own.
func TestEveryServerThroughNewServer(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	literal := regexp.MustCompile(`http\.Server\s*\{`)
	allowed := map[string]bool{"services/daemon/group.go": true, "infra/chserver/server.go": true}
	var found []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if literal.Match(b) && !allowed[rel] {
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("http.Server built outside daemon.NewServer in %v", found)
	}
}
