package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// usage is an error with an exit code, as the CLI's usage errors.
type usage struct{ error }

func (usage) ExitCode() int { return 2 }

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{errors.New("brokers: none given"), 1, "svc: brokers: none given\n"},
		{fmt.Errorf("devices: %w", usage{errors.New("want a command")}), 2, "svc: devices: want a command\n"},
	} {
		var buf bytes.Buffer
		if code := exit("svc", tc.err, &buf); code != tc.code || buf.String() != tc.out {
			t.Errorf("%v: code %d, out %q; want %d, %q", tc.err, code, buf.String(), tc.code, tc.out)
		}
	}
}

func TestUnusedEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var k Kafka
	var p process
	k.Register(fs)
	p.Register(fs, "")
	got := unusedEnv(fs, []string{"MINECART_BROKERS=k:9092", "MINECART_SCHEMA_REGISTRY=http://sr", "PATH=/bin",
		"MINECART_KAFKA_SASL=a:b:c", "MINECART_CLICKHOUSE=x", "MINECARTX=1", "MINECART_LOG_LEVEL=debug"})
	if want := []string{"MINECART_CLICKHOUSE", "MINECART_SCHEMA_REGISTRY"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestParseHelp: -h and --help print the help generated from the flags
// (every flag, its default and usage) and return flag.ErrHelp; single and
// double dashes are the same; the command line wins over the environment.
func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		fs := flag.NewFlagSet("svc", flag.ContinueOnError)
		var out bytes.Buffer
		fs.SetOutput(&out)
		fs.String("data-dir", "data", "where the data goes")
		fs.Bool("create-key", true, "create the key")
		if err := parse(fs, []string{arg}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"svc", "-data-dir", "where the data goes", "(default: data)", "-create-key"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
	t.Setenv("MINECART_DATA_DIR", "/env")
	t.Setenv("MINECART_ORIGIN", "env/origin")
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	dir := fs.String("data-dir", "data", "")
	origin := fs.String("origin", "o", "")
	if err := parse(fs, []string{"-data-dir", "/arg"}); err != nil || *dir != "/arg" || *origin != "env/origin" {
		t.Fatalf("data-dir %q origin %q: %v", *dir, *origin, err)
	}
	// A present but empty variable empties its flag ("empty: none").
	t.Setenv("MINECART_ORIGIN", "")
	fs = flag.NewFlagSet("svc", flag.ContinueOnError)
	origin = fs.String("origin", "o", "")
	if err := parse(fs, nil); err != nil || *origin != "" {
		t.Fatalf("MINECART_ORIGIN= gives origin %q: %v", *origin, err)
	}
}

// TestRun runs a service as a main does: its own flag from the
// environment, Prepare before connecting, Build's HTTP server and part in
// the group, the closers in reverse order once the context is done.
func TestRun(t *testing.T) {
	brokers := kafkatest.Broker(t)
	t.Setenv("MINECART_BROKERS", strings.Join(brokers, ","))
	t.Setenv("MINECART_GREETING", "hello from the environment")
	api := freeAddr(t)
	var greeting string
	var closed []string
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	built := make(chan *Env, 1)
	done := make(chan error, 1)
	svc := Service{
		Name: "svc", MetricsAddr: "", InstanceID: true,
		Flags: func(fs *flag.FlagSet) { fs.StringVar(&greeting, "greeting", "hello", "what the API answers") },
		Build: func(ctx context.Context, env *Env) error {
			env.OnClose(func() error { closed = append(closed, "first"); return nil })
			env.OnClose(func() error { closed = append(closed, "second"); return nil })
			env.Go("part", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			built <- env
			return env.Serve("api", &http.Server{Addr: api, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, greeting)
			})})
		},
	}
	go func() { done <- Run(ctx, []string{"--instance-id", "svc-0"}, svc) }()
	env := <-built
	if env.Kafka.InstanceID != "svc-0" || env.Kafka.Registerer != env.Registry || env.Kafka.Serde == nil || env.Log == nil {
		t.Errorf("env %+v", env.Kafka)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + api)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "hello from the environment" {
				t.Errorf("answer %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(closed, []string{"second", "first"}) {
		t.Errorf("closed %q", closed)
	}

	// Prepare fails before any connection; -h is no failure.
	boom := errors.New("no key")
	svc.Prepare = func(*slog.Logger) error { return boom }
	if err := Run(t.Context(), []string{"--brokers", "127.0.0.1:1"}, svc); !errors.Is(err, boom) {
		t.Fatalf("prepare: %v", err)
	}
	if err := Run(t.Context(), []string{"-h"}, Service{Name: "svc"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("help: %v", err)
	}
}
