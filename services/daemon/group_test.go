package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestGroupMetricsAndStop serves the metrics, then cancels the parent
// context: every part returns, Wait returns nil.
func TestGroupMetricsAndStop(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	g, gctx := NewGroup(ctx)
	reg := NewRegistry()
	metrics := freeAddr(t)
	if err := g.ServeMetrics(metrics, reg); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+metrics+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := get(t, "http://"+metrics+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d %.200s", code, body)
	}
	if err := g.ServeMetrics("", reg); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	g.Go("stage", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err() // a part that returns the cancellation is not failing
	})
	// Serve sets the address it bound.
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: MetricsHandler(reg)}
	if err := g.Serve("metrics2", srv); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+srv.Addr+"/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Fatalf("metrics: %d %.200s", code, body)
	}
	if gctx.Err() != nil {
		t.Fatal("group stopped early")
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
	<-stopped
	if _, err := http.Get("http://" + srv.Addr + "/metrics"); err == nil {
		t.Fatal("server still up after Wait")
	}
}

// TestGroupFirstErrorStops: a failing part cancels the others and its
// error, named, is Wait's.
func TestGroupFirstErrorStops(t *testing.T) {
	g, _ := NewGroup(t.Context())
	g.Go("follower", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("late error after cancel")
	})
	boom := errors.New("boom")
	g.Go("stage", func(context.Context) error { return boom })
	err := g.Wait()
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "stage: ") {
		t.Fatalf("wait: %v", err)
	}
}

// TestGroupServeAddressInUse: Serve reports a taken address at once.
func TestGroupServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g, _ := NewGroup(t.Context())
	if err := g.Serve("api", &http.Server{Addr: ln.Addr().String()}); err == nil || !strings.HasPrefix(err.Error(), "api: ") {
		t.Fatalf("serve: %v", err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestGroupGracefulShutdown: a request in flight when the group stops is
// answered; one that outlasts ShutdownTimeout is cut and Wait says so.
func TestGroupGracefulShutdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		wantErr bool
	}{
		{"finishes", time.Minute, false},
		{"cut", time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			g, _ := NewGroup(ctx)
			g.ShutdownTimeout = tc.timeout
			entered, release := make(chan struct{}), make(chan struct{})
			srv := &http.Server{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				io.WriteString(w, "done")
			})}
			if err := g.Serve("api", srv); err != nil {
				t.Fatal(err)
			}
			type result struct {
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				resp, err := http.Get("http://" + srv.Addr)
				if err != nil {
					res <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				res <- result{string(b), err}
			}()
			<-entered
			cancel()
			waited := make(chan error, 1)
			go func() { waited <- g.Wait() }()
			if !tc.wantErr {
				// Shutdown waits for the handler, which waits for release.
				select {
				case err := <-waited:
					t.Fatalf("Wait returned before the request finished: %v", err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			if !tc.wantErr {
				close(release)
			}
			err := <-waited
			if tc.wantErr {
				close(release)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("wait: %v, wantErr %v", err, tc.wantErr)
			}
			r := <-res
			if !tc.wantErr && (r.err != nil || r.body != "done") {
				t.Fatalf("in-flight request: %q %v", r.body, r.err)
			}
		})
	}
}
