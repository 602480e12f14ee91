// Package daemon runs minecart's processes: one declaration of a service
// main (Service: its name, its own flags, what it builds) and one entry that
// runs it (Run): the flags and their MINECART_* environment variables
// parsed with ff, the Kafka and Schema Registry connection (SASL, TLS) as a
// kafka.Config and a schemas.Serde, a JSON logger, a Prometheus registry
// served with /healthz, and the service's parts (stages, sinks, HTTP
// servers) in one Group until a signal or the first failure; Main adds the
// signals and exit codes.
//
// Every flag "name" can also be set as MINECART_NAME (upper case, "-" as
// "_"); a flag on the command line wins.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"

	"github.com/peterbourgon/ff/v4"
	"github.com/peterbourgon/ff/v4/ffhelp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/minecart/minecart/internal/envflag"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// EnvPrefix prefixes the environment variable of every flag: flag
// "brokers" is MINECART_BROKERS.
const EnvPrefix = "MINECART"

// parse parses args into fs with ff, then sets every flag not given in args
// from its EnvPrefix variable (internal/envflag: a variable set to "" sets
// the flag to ""). On -h or
// --help it writes the help generated from fs to fs.Output() and returns
// flag.ErrHelp. Single- and double-dash flags are the same (-brokers,
// --brokers).
func parse(fs *flag.FlagSet, args []string) error {
	ffs := ff.NewFlagSetFrom(fs.Name(), fs)
	err := envflag.Parse(ffs, args, EnvPrefix)
	if errors.Is(err, ff.ErrHelp) {
		fmt.Fprint(fs.Output(), append(ffhelp.Flags(ffs, fs.Name()+" [FLAGS]"), EnvHelp()))
	}
	return err
}

// EnvHelp is the help section that says how the environment sets flags.
func EnvHelp() ffhelp.Section {
	return ffhelp.NewSection("ENVIRONMENT", "Every flag can also be set as "+EnvPrefix+"_<FLAG> (upper case, - as _): -data-dir is "+
		EnvPrefix+"_DATA_DIR. A flag given on the command line wins.")
}

// Service declares a service main for Run.
type Service struct {
	// Name names the process in logs, errors and help.
	Name string
	// MetricsAddr is the default of -metrics-addr.
	MetricsAddr string
	// InstanceID adds -instance-id: the process runs a stage in a consumer
	// group (its transactional id and static member id).
	InstanceID bool
	// Flags declares the service's own flags (nil: none).
	Flags func(fs *flag.FlagSet)
	// Prepare runs after the flags are parsed and before any connection
	// (nil: nothing): checks of the flags, files to load.
	Prepare func(log *slog.Logger) error
	// Build starts the service's parts in env (Stage, Serve, Go) and
	// registers what to close after they all returned (OnClose, Table,
	// Producer). ctx is the group's: done when the process stops.
	Build func(ctx context.Context, env *Env) error
}

// Env is what Build gets: the process's logger, registry and Kafka runtime
// configuration, and the Group its parts run in.
type Env struct {
	Log *slog.Logger
	// Registry holds the process's metrics, served on -metrics-addr.
	Registry *prometheus.Registry
	// Kafka is the runtime configuration of the connection flags, with
	// Log, Registry and the Serde every component shares (Kafka.Serde).
	Kafka kafka.Config
	*Group

	closers []func() error
}

// NewEnv returns an Env whose parts run in a new Group under ctx, and the
// group's context (done once a part stopped). Run makes one for Build; the
// in-process stack (services/stack) makes its own.
func NewEnv(ctx context.Context, log *slog.Logger, reg *prometheus.Registry, cfg kafka.Config) (*Env, context.Context) {
	g, gctx := NewGroup(ctx)
	return &Env{Log: log, Registry: reg, Kafka: cfg, Group: g}, gctx
}

// Close stops every part, waits for them and runs the closers.
func (e *Env) Close() error {
	e.Stop()
	return e.finish()
}

// finish waits for every part, then runs the closers in the reverse order
// of registration.
func (e *Env) finish() error {
	err := e.Wait()
	for i := len(e.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, e.closers[i]())
	}
	return err
}

// Stage runs st in the group (kafka.Run); it returns once its in-flight
// transaction is committed or aborted.
func (e *Env) Stage(st pipelines.Stage) {
	e.Go(st.Name, func(ctx context.Context) error { return kafka.Run(ctx, e.Kafka, st) })
}

// Sink runs the ClickHouse sink st over conn in the group (kafka.RunSink),
// once the ClickHouse migrations are applied (clickhouse.MigrateWhenUp,
// which waits for ClickHouse to answer).
func (e *Env) Sink(conn driver.Conn, st pipelines.SinkStage) {
	e.Go(st.Name, func(ctx context.Context) error {
		if err := clickhouse.MigrateWhenUp(ctx, conn, e.Log); err != nil {
			return err
		}
		return kafka.RunSink(ctx, e.Kafka, st)
	})
}

// OnClose registers fn to run once every part returned, in the reverse
// order of registration (producers, tables, connections).
func (e *Env) OnClose(fn func() error) { e.closers = append(e.closers, fn) }

// Table returns a table following topic (kafka.NewTable), closed once
// every part returned.
func (e *Env) Table(ctx context.Context, topic string) (*kafka.Table, error) {
	t, err := kafka.NewTable(ctx, e.Kafka, topic)
	if err == nil {
		e.OnClose(t.Close)
	}
	return t, err
}

// Producer returns a producer (kafka.NewProducer), closed once every part
// returned.
func (e *Env) Producer() (*kafka.Producer, error) {
	p, err := kafka.NewProducer(e.Kafka)
	if err == nil {
		e.OnClose(p.Close)
	}
	return p, err
}

// Run runs svc with the command-line arguments args until ctx is done or a
// part of it returns: it parses the flags (the connection flags of Kafka,
// -metrics-addr, -log-level, -instance-id if asked, then svc's), runs
// Prepare, connects (creating the missing topics unless
// -create-topics=false), serves the metrics, runs Build, then waits for
// every part and runs the closers. The error is the first of any step.
func Run(ctx context.Context, args []string, svc Service) error {
	fs := flag.NewFlagSet(svc.Name, flag.ContinueOnError)
	var kf Kafka
	var proc process
	kf.Register(fs)
	if svc.InstanceID {
		kf.RegisterInstanceID(fs)
	}
	proc.Register(fs, svc.MetricsAddr)
	if svc.Flags != nil {
		svc.Flags(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	log := proc.Logger()
	if svc.Prepare != nil {
		if err := svc.Prepare(log); err != nil {
			return err
		}
	}
	if svc.InstanceID {
		host, _ := os.Hostname()
		id, release, err := claimInstanceID(svc.Name, host, kf.InstanceID)
		if err != nil {
			return err
		}
		defer release()
		kf.InstanceID = id
		log.Info(svc.Name+" instance", "instance_id", id)
	}
	reg := NewRegistry()
	cfg, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	env, gctx := NewEnv(ctx, log, reg, cfg)
	err = env.ServeMetrics(proc.MetricsAddr, reg)
	if err == nil {
		err = svc.Build(gctx, env)
	}
	if err != nil {
		env.Stop()
	} else {
		log.Info(svc.Name+" starting", "brokers", cfg.Brokers)
	}
	return errors.Join(err, env.finish())
}

// process holds the flags every service process has.
type process struct {
	// MetricsAddr is where /metrics is served (empty: nowhere).
	MetricsAddr string
	// LogLevel is the lowest level logged.
	LogLevel slog.Level

	fs *flag.FlagSet // the command's flags, for Logger's warning
}

// Register adds metrics-addr (default metricsAddr) and log-level to fs.
func (p *process) Register(fs *flag.FlagSet, metricsAddr string) {
	p.fs = fs
	fs.StringVar(&p.MetricsAddr, "metrics-addr", metricsAddr, "address of the Prometheus /metrics endpoint and /healthz (empty: none)")
	fs.TextVar(&p.LogLevel, "log-level", slog.LevelInfo, "lowest level logged: debug, info, warn or error")
}

// Logger returns a JSON logger to stderr at LogLevel. It first warns about
// every MINECART_* environment variable that sets no flag of the command
// (a typo, or a flag that was renamed), since parse ignores them.
func (p *process) Logger() *slog.Logger {
	log := newLogger(os.Stderr, p.LogLevel)
	if p.fs != nil {
		if unused := unusedEnv(p.fs, os.Environ()); len(unused) > 0 {
			log.Warn("environment variables that set no flag", "vars", unused)
		}
	}
	return log
}

// unusedEnv returns the names of the EnvPrefix variables of environ
// ("NAME=value" strings, as os.Environ) that name no flag of fs.
func unusedEnv(fs *flag.FlagSet, environ []string) []string {
	known := map[string]bool{}
	env := strings.NewReplacer("-", "_", ".", "_")
	fs.VisitAll(func(f *flag.Flag) { known[EnvPrefix+"_"+strings.ToUpper(env.Replace(f.Name))] = true })
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

// newLogger returns a JSON logger to w at level.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Main runs a command's run function with the command-line arguments and a
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

// exit prints err for name on w and returns the exit code: 0 for none or
// help, the code of an error in the chain that has an ExitCode method (a
// command line that does not say what to run exits 2, as with the flag
// package), else 1.
func exit(name string, err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

// FollowPseudonyms follows the pseudonyms topic under seal
// (follow.NewFollower), read by a part of its own.
func (e *Env) FollowPseudonyms(seal *pseudonym.SealKey) (*follow.Follower, error) {
	names, err := follow.NewFollower(e.Kafka, seal, e.Log)
	if err != nil {
		return nil, err
	}
	e.Go("pseudonyms", names.Run)
	return names, nil
}

// LoadPseudonyms is FollowPseudonyms under the sealing key in the file
// path (pseudonym.LoadSealKey), and that key.
func (e *Env) LoadPseudonyms(path string) (*follow.Follower, *pseudonym.SealKey, error) {
	seal, err := pseudonym.LoadSealKey(path)
	if err != nil {
		return nil, nil, err
	}
	names, err := e.FollowPseudonyms(seal)
	return names, seal, err
}
