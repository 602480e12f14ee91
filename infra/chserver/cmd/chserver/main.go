// Command chserver runs the embedded ClickHouse server alone (the same
// server as `minecart clickhouse`). Flags may be set as MINECART_* variables.
//
// It prints "listening <addr>" on stdout once it accepts connections, which
// chtest uses to find a server started on port 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v4"
	"github.com/peterbourgon/ff/v4/ffhelp"

	"github.com/minecart/minecart/internal/envflag"

	"github.com/minecart/minecart/infra/chserver"
)

func main() {
	fs := flag.NewFlagSet("chserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8123", "HTTP listen address")
	dataDir := fs.String("data-dir", "data/clickhouse", "directory of the databases")
	debug := fs.Bool("debug", false, "log every failed request")
	ffs := ff.NewFlagSetFrom(fs.Name(), fs)
	if err := envflag.Parse(ffs, os.Args[1:], "MINECART"); err != nil {
		if errors.Is(err, ff.ErrHelp) {
			fmt.Fprint(os.Stderr, ffhelp.Flags(ffs, "chserver [FLAGS]"))
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := chserver.Serve(ctx, chserver.Config{
		Addr: *addr, DataDir: *dataDir, Logger: log,
		OnListen: func(a net.Addr) { fmt.Printf("listening %s\n", a) },
	})
	if err != nil {
		log.Error("chserver", "err", err)
		os.Exit(1)
	}
}
