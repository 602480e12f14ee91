// Command sink lands minecart's topics in ClickHouse (services/sink).
// Flags may be set as MINECART_* environment variables.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/sink"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	dsn := fs.String("clickhouse-dsn", sink.DefaultDSN, "ClickHouse DSN: http://host:8123/db (embedded) or clickhouse://host:9000/db (native)")
	group := fs.String("group", "sink", "consumer group")
	registry := fs.String("schema-registry", "", "Schema Registry URL (empty: Avro single-object framing)")
	maxRows := fs.Int("max-rows", 50000, "most records per ClickHouse insert")
	maxWait := fs.Duration("max-wait", time.Second, "longest a record waits before its insert")
	if err := flagenv.Parse(fs, "MINECART", os.Args[1:]); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serde := schemas.SingleObject()
	if *registry != "" {
		var err error
		if serde, err = schemas.NewSerde(ctx, schemas.SerdeConfig{RegistryURL: *registry}); err != nil {
			return err
		}
	}
	return sink.Run(ctx, sink.Config{
		Runtime: pipelines.Config{Brokers: strings.Split(*brokers, ","), Logger: log, Serde: serde},
		DSN:     *dsn, Group: *group, MaxRows: *maxRows, MaxWait: *maxWait,
	})
}
