// Command sink lands minecart's topics in ClickHouse (services/sink).
// Every flag can also be set as MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/sink"
)

func main() { daemon.Main("sink", run) }

func run(ctx context.Context, args []string) error {
	var cfg sink.Config
	var dsn, sealPath string
	return daemon.Run(ctx, args, daemon.Service{
		Name: "sink", MetricsAddr: "127.0.0.1:9106", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dsn, "clickhouse-dsn", sink.DefaultDSN, "ClickHouse DSN with the credentials of a writer (the sink and its migrations): http://writer:PASSWORD@host:8123/db (embedded; users in DATA-DIR/clickhouse/users.json) or clickhouse://user:pass@host:9000/db (native); prefer MINECART_CLICKHOUSE_DSN")
			fs.StringVar(&cfg.Name, "group", "sink", "consumer group")
			fs.IntVar(&cfg.MaxRows, "max-rows", sink.DefaultMaxRows, "most records per batch (offset commit)")
			fs.IntVar(&cfg.InsertRows, "insert-rows", sink.DefaultInsertRows, "most rows per ClickHouse insert (a batch of more is pipelined in chunks)")
			fs.DurationVar(&cfg.MaxWait, "max-wait", time.Second, "longest a record waits before its insert")
			fs.StringVar(&sealPath, "pseudonym-key", "", "the ledger's pseudonym-sealing key file: opens the scores scoring sealed (docs/privacy.md; empty: a sealed score is dead-lettered)")
		},
		Build: func(_ context.Context, env *daemon.Env) (err error) {
			if cfg.Conn, err = sink.Open(dsn); err != nil {
				return err
			}
			env.OnClose(cfg.Conn.Close)
			cfg.Serde, cfg.Registerer, cfg.Logger = env.Kafka.Serde, env.Registry, env.Log
			if sealPath != "" {
				names, _, err := env.LoadPseudonyms(sealPath)
				if err != nil {
					return err
				}
				cfg.Pseudonyms = names
			}
			st, err := sink.NewStage(cfg)
			if err != nil {
				return err
			}
			env.Sink(cfg.Conn, st)
			return nil
		},
	})
}
