package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultShutdownTimeout is the default Group.ShutdownTimeout.
const DefaultShutdownTimeout = 15 * time.Second

// Group runs the parts of a process (stages, followers, HTTP servers) until
// the first of them ends or the parent context is done, then waits for all
// of them. A process is its parts: one that returns, with or without an
// error, stops the others. Every service main (through Run) and the whole
// pipeline in one process (services/stack) run their parts in a Group.
type Group struct {
	// ShutdownTimeout bounds the graceful shutdown of each HTTP server
	// (in-flight requests finish); past it the server is closed (default
	// DefaultShutdownTimeout). Set it before Serve.
	ShutdownTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

// NewGroup returns a group and its context, which is cancelled when ctx is
// done or a part of the group returns.
func NewGroup(ctx context.Context) (*Group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &Group{ShutdownTimeout: DefaultShutdownTimeout, ctx: ctx, cancel: cancel}, ctx
}

// Go runs fn with the group's context in a goroutine. When it returns, the
// group's context is cancelled; its error, named by name, becomes Wait's if
// it is the first. An error that is only the cancellation of the group's
// context is no error.
func (g *Group) Go(name string, fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := fn(g.ctx)
		if err != nil && g.ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
		g.mu.Lock()
		if err != nil && g.err == nil {
			g.err = fmt.Errorf("%s: %w", name, err)
		}
		g.mu.Unlock()
		g.cancel()
	}()
}

// The timeouts of every HTTP server the project runs: NewServer sets them,
// and Group.Serve (so Env.Serve, every main and the stack) sets each one a
// server leaves zero. A server that needs another bound sets it; a negative
// value means no bound (net/http), which nothing in the tree uses.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers: a client
	// that trickles them (slow-loris) is cut off.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, headers and body,
	// from its first byte. Handlers may shorten it for their body (the
	// gateway's BodyTimeout) with http.ResponseController.
	DefaultReadTimeout = time.Minute
	// DefaultWriteTimeout bounds the time from the end of a request's
	// headers to the end of its response: body read, handling and the
	// response write. It must exceed the longest handler (the gateway:
	// BodyTimeout + ProduceTimeout, 60s by default).
	DefaultWriteTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds how long a keep-alive connection waits for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds a request's headers (net/http's default
	// is 1 MiB).
	DefaultMaxHeaderBytes = 64 << 10
)

// NewServer returns a server of h on addr with the default timeouts and
// header bound above: the one way the project builds an http.Server.
func NewServer(addr string, h http.Handler) *http.Server {
	srv := &http.Server{Addr: addr, Handler: h}
	SetDefaults(srv)
	return srv
}

// SetDefaults sets every zero timeout of srv (ReadHeaderTimeout,
// ReadTimeout, WriteTimeout, IdleTimeout) and a zero MaxHeaderBytes to the
// defaults above.
func SetDefaults(srv *http.Server) {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&srv.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{&srv.ReadTimeout, DefaultReadTimeout},
		{&srv.WriteTimeout, DefaultWriteTimeout},
		{&srv.IdleTimeout, DefaultIdleTimeout},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
}

// Serve listens on srv.Addr at once (an address in use is an error here,
// not later) and sets srv.Addr to the address bound (":0" picks a port),
// then serves srv in the group. When the group's context is done, srv is
// shut down gracefully within ShutdownTimeout. Zero timeouts of srv are set
// to the defaults first (SetDefaults).
func (g *Group) Serve(name string, srv *http.Server) error {
	SetDefaults(srv)
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv.Addr = ln.Addr().String()
	timeout := g.ShutdownTimeout
	g.Go(name, func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			err = fmt.Errorf("shutdown: %w", err)
			_ = srv.Close() // cut the requests still running; err says so
		}
		if serr := <-errc; err == nil && !errors.Is(serr, http.ErrServerClosed) {
			err = serr
		}
		return err
	})
	return nil
}

// ServeMetrics serves reg's metrics on addr (empty addr: nothing) in the
// group: /healthz answers 200 while the process runs (a liveness probe),
// every other path the metrics.
func (g *Group) ServeMetrics(addr string, reg *prometheus.Registry) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", MetricsHandler(reg))
	return g.Serve("metrics", NewServer(addr, mux))
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Stop cancels the group's context: every part is asked to return (for a
// start-up that fails after some parts were started; Wait still waits).
func (g *Group) Stop() { g.cancel() }

// Err is the first error of a part so far (nil while none failed), for a
// caller that watches the group's context instead of waiting.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Wait waits for every part to return and returns the first error.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.Err()
}
