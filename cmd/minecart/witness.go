package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	ff "github.com/peterbourgon/ff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/witness"
)

// witnessCommand runs a C2SP tlog-witness (services/witness) for the
// ledger: a partner's node that cosigns the ledger's checkpoints.
func witnessCommand(stdout io.Writer) *ff.Command {
	var addr, dir, name, metrics, mirror, keyFile, mirrorKeyFile string
	var logs []string
	return newCommand(nil, "witness", "", "run a C2SP tlog-witness that cosigns the ledger's checkpoints (docs/ledger.md, The witness)", func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", "127.0.0.1:8090", "HTTP listen address of the witness API (POST /add-checkpoint)")
		fs.StringVar(&dir, "state-dir", ".minecart/witness", "state directory: the witness key (created on first start, 0600), the last cosigned checkpoint of each log, evidence")
		fs.StringVar(&name, "name", "", "the witness's key name, e.g. witness.example/w1 (required on first start; then fixed by the key)")
		fs.StringVar(&mirror, "mirror", "", "mirror mode: the URL of the ledger's tiles (http://<ledger http-addr>/ledger); the witness then also copies, verifies, serves (GET /ledger/...) and cosigns with a separate mirror key the whole book (docs/ledger.md, Mirror mode)")
		fs.StringVar(&keyFile, "key", "", "read the witness key from this file (must exist; e.g. a mounted Secret) instead of <state-dir>/witness.key")
		fs.StringVar(&mirrorKeyFile, "mirror-key", "", "with --mirror: read the mirror key from this file instead of <state-dir>/mirror.key")
		fs.StringVar(&metrics, "metrics-addr", "", "serve Prometheus metrics on this address (empty: none)")
		fs.Func("log", "verifier key of a log to witness, as `minecart ledger pubkey` prints it (<origin>+<id>+<key>), or @FILE holding one (repeatable)", func(v string) error {
			if f, ok := strings.CutPrefix(v, "@"); ok {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				v = strings.TrimSpace(string(b))
			}
			logs = append(logs, v)
			return nil
		})
	}, func(ctx context.Context, _ []string) error {
		if len(logs) == 0 {
			return usageError{errors.New("--log is required: the verifier key of the ledger")}
		}
		reg := prometheus.NewRegistry()
		w, err := witness.New(witness.Config{Dir: dir, Name: name, Logs: logs, Mirror: mirror, KeyFile: keyFile, MirrorKeyFile: mirrorKeyFile, Registerer: reg, Logger: slog.Default()})
		if err != nil {
			return err
		}
		g, _ := daemon.NewGroup(ctx)
		srv := daemon.NewServer(addr, w.Handler())
		if err := g.Serve("witness", srv); err != nil {
			return err
		}
		if err := g.ServeMetrics(metrics, reg); err != nil {
			g.Stop()
			_ = g.Wait()
			return err
		}
		fmt.Fprintf(stdout, "witness %s on http://%s/\nverifier key %s\n", w.Name(), srv.Addr, w.VerifierKey())
		if m := w.Mirror(); m != nil {
			g.Go("mirror", w.Run)
			fmt.Fprintf(stdout, "mirror of %s on http://%s/ledger/\nmirror key %s\n", mirror, srv.Addr, m.VerifierKey())
		}
		return g.Wait()
	})
}
