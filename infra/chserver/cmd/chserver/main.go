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
	"path/filepath"
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
	usersFile := fs.String("users-file", "", "JSON users file (default <data-dir>/users.json; created with analyst, reader and writer when missing and no --user is given)")
	var users []chserver.User
	fs.Func("user", "NAME:PASSWORD:ROLE of a user (role readonly, writer or admin; repeatable)", func(v string) error {
		u, err := chserver.ParseUser(v)
		users = append(users, u)
		return err
	})
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
	if *usersFile == "" {
		*usersFile = filepath.Join(*dataDir, "users.json")
	}
	all, _, err := chserver.UsersFromFlags(users, *usersFile)
	if err != nil {
		log.Error("chserver", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = chserver.Serve(ctx, chserver.Config{
		Addr: *addr, DataDir: *dataDir, Logger: log, Users: all,
		OnListen: func(a net.Addr) { fmt.Printf("listening %s\n", a) },
	})
	if err != nil {
		log.Error("chserver", "err", err)
		os.Exit(1)
	}
}
