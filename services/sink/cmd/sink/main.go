// Command sink lands minecart's topics in ClickHouse (services/sink).
// Every flag can also be set as MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/minecart/minecart/pipelines/kafka"
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
	pcfg, serde, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	conn, err := sink.Open(*dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := sink.NewStage(sink.Config{Conn: conn, Name: *group, MaxRows: *maxRows, MaxWait: *maxWait, InsertRows: *insertRows,
		Serde: serde, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	g, _ := daemon.NewGroup(ctx)
	if err := g.ServeMetrics(proc.MetricsAddr, reg); err != nil {
		return err
	}
	g.Go("sink", func(ctx context.Context) error {
		if err := sink.Migrate(ctx, conn, log); err != nil {
			return err
		}
		return kafka.RunSink(ctx, pcfg, st)
	})
	log.Info("sink starting", "brokers", pcfg.Brokers, "group", st.Name, "inputs", st.Inputs)
	return g.Wait()
}
