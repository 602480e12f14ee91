package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minecart/minecart/services/flagenv"
)

// Process holds the flags every service process has.
type Process struct {
	// MetricsAddr is where /metrics is served (empty: nowhere).
	MetricsAddr string
	// LogLevel is the lowest level logged.
	LogLevel slog.Level

	fs *flag.FlagSet // the command's flags, for Logger's warning
}

// Register adds metrics-addr (default metricsAddr) and log-level to fs.
func (p *Process) Register(fs *flag.FlagSet, metricsAddr string) {
	p.fs = fs
	fs.StringVar(&p.MetricsAddr, "metrics-addr", metricsAddr, "address of the Prometheus /metrics endpoint (empty: none)")
	fs.TextVar(&p.LogLevel, "log-level", slog.LevelInfo, "lowest level logged: debug, info, warn or error")
}

// Logger returns a JSON logger to stderr at LogLevel. It first warns about
// every MINECART_* environment variable that sets no flag of the command
// (a typo, or a flag that was renamed), since flagenv ignores them.
func (p *Process) Logger() *slog.Logger {
	log := NewLogger(os.Stderr, p.LogLevel)
	if p.fs != nil {
		if unused := UnusedEnv(p.fs, os.Environ()); len(unused) > 0 {
			log.Warn("environment variables that set no flag", "vars", unused)
		}
	}
	return log
}

// UnusedEnv returns the names of the EnvPrefix variables of environ
// ("NAME=value" strings, as os.Environ) that name no flag of fs.
func UnusedEnv(fs *flag.FlagSet, environ []string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[flagenv.EnvName(EnvPrefix, f.Name)] = true })
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// NewLogger returns a JSON logger to w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// DefaultShutdownTimeout is the default Group.ShutdownTimeout.
const DefaultShutdownTimeout = 15 * time.Second

// Group runs the parts of a service (stages, followers, HTTP servers) until
// the first of them ends or the parent context is done, then waits for all
// of them. A service is its parts: one that returns, with or without an
// error, stops the others.
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

// Serve listens on srv.Addr at once (an address in use is an error here,
// not later) and sets srv.Addr to the address bound (":0" picks a port),
// then serves srv in the group. When the group's context is done, srv is
// shut down gracefully within ShutdownTimeout. A zero ReadHeaderTimeout is
// set to 5s (slow-loris).
func (g *Group) Serve(name string, srv *http.Server) error {
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = 5 * time.Second
	}
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
	return g.Serve("metrics", &http.Server{Addr: addr, Handler: mux})
}

// Stop cancels the group's context: every part is asked to return (for a
// start-up that fails after some parts were started; Wait still waits).
func (g *Group) Stop() { g.cancel() }

// Wait waits for every part to return and returns the first error.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Main runs a service's run function with the command-line arguments and a
// context cancelled on SIGINT or SIGTERM (a second signal kills the process
// at once), then exits: 0 when run returned nil or flag.ErrHelp, else 1
// after printing "name: err" on stderr. run should return after its context
// is done, once its work is committed.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // from now on the default action: a second signal kills
	}()
	code := exit(name, run(ctx, os.Args[1:]), os.Stderr)
	stop()
	os.Exit(code)
}

// exit prints err for name on w and returns the exit code.
func exit(name string, err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	return 1
}
