package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/infra/chserver"
	chmigrate "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/sink"
)

// newFlags makes a command's flag set; parse with parseFlags so every flag
// can also come from MINECART_* environment variables.
func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("minecart "+name, flag.ContinueOnError)
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	return flagenv.Parse(fs, "MINECART", args)
}

func brokerCmd(ctx context.Context, args []string) error {
	fs := newFlags("broker")
	addr := fs.String("addr", "127.0.0.1:9092", "Kafka listen address")
	dataDir := fs.String("data-dir", ".minecart/kafka", "directory the broker persists its log, groups and transactions in")
	sync := fs.Bool("sync-writes", false, "fsync every produced batch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b, err := broker.Start(broker.Config{Addr: *addr, DataDir: *dataDir, SyncWrites: *sync, Logger: slog.Default()})
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, b.Addrs(), pipelines.Topology); err != nil {
		return errors.Join(fmt.Errorf("create topology: %w", err), b.Close())
	}
	slog.Info("embedded Kafka broker ready", "addrs", b.Addrs(), "data_dir", *dataDir)
	fmt.Printf("kafka listening %v (try: kcat -b %s -L)\n", b.Addrs(), b.Addrs()[0])
	<-ctx.Done()
	return b.Close()
}

func clickhouseCmd(ctx context.Context, args []string) error {
	fs := newFlags("clickhouse")
	addr := fs.String("addr", "127.0.0.1:8123", "HTTP listen address (ClickHouse's HTTP interface)")
	dataDir := fs.String("data-dir", ".minecart/clickhouse", "directory of the databases")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return chserver.Serve(ctx, chserver.Config{
		Addr: *addr, DataDir: *dataDir, Logger: slog.Default(),
		// `minecart run` reads this line to learn the address.
		OnListen: func(a net.Addr) { fmt.Fprintf(os.Stdout, "listening %s\n", a) },
	})
}

func migrateCmd(ctx context.Context, args []string) error {
	fs := newFlags("migrate")
	dsn := fs.String("clickhouse", sink.DefaultDSN, "ClickHouse DSN: http://host:8123/db (embedded) or clickhouse://user:pass@host:9000/db")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	conn, err := sink.Open(*dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := chmigrate.Migrate(ctx, conn); err != nil {
		return err
	}
	applied, err := chmigrate.Applied(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Printf("ClickHouse schema up to date: %d migrations applied\n", len(applied))
	return nil
}
