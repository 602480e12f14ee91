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
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	proc.Register(fs, "127.0.0.1:9106")
	dsn := fs.String("clickhouse-dsn", sink.DefaultDSN, "ClickHouse DSN: http://host:8123/db (embedded) or clickhouse://user:pass@host:9000/db (native; prefer the environment)")
	group := fs.String("group", "sink", "consumer group")
	maxRows := fs.Int("max-rows", sink.DefaultMaxRows, "most records per batch (offset commit)")
	insertRows := fs.Int("insert-rows", sink.DefaultInsertRows, "most rows per ClickHouse insert (a batch of more is pipelined in chunks)")
	maxWait := fs.Duration("max-wait", time.Second, "longest a record waits before its insert")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	log := proc.Logger()
	reg := daemon.NewRegistry()
	pcfg, _, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	cfg := sink.Config{Runtime: pcfg, DSN: *dsn, Group: *group, MaxRows: *maxRows, MaxWait: *maxWait, InsertRows: *insertRows}
	if err := cfg.Validate(); err != nil {
		return err
	}
	g, _ := daemon.NewGroup(ctx)
	if err := g.ServeMetrics(proc.MetricsAddr, reg); err != nil {
		return err
	}
	g.Go("sink", func(ctx context.Context) error { return sink.Run(ctx, cfg) })
	log.Info("sink starting", "brokers", pcfg.Brokers, "group", *group, "inputs", cfg.Inputs)
	return g.Wait()
}
