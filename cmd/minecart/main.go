// Command minecart is the command line of minecart: it runs the whole
// pipeline on one machine (run), its embedded infrastructure alone (broker,
// clickhouse, migrate), and the operators' and owners' tools (devices,
// accounts, catalog, ledger).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"run":        {"run the whole pipeline with the embedded broker and ClickHouse and a simulated fleet", runCmd},
	"broker":     {"run the embedded Kafka broker alone", brokerCmd},
	"clickhouse": {"run the embedded ClickHouse server alone (chDB over ClickHouse's HTTP interface)", clickhouseCmd},
	"migrate":    {"apply the ClickHouse migrations", migrateCmd},
	"devices":    {"provision devices: add | list | revoke", devicesCmd},
	"accounts":   {"bind vehicles to owner accounts: bind | list", accountsCmd},
	"catalog":    {"manage the partner catalog: add | list", catalogCmd},
	"ledger":     {"read and check the ledger: head | verify | export | prove | check-proof", ledgerCmd},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: minecart COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nEvery flag can also be set as MINECART_<FLAG> (dashes as underscores). `minecart COMMAND -h` lists a command's flags.")
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "minecart: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "minecart %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// logLevel is info, or debug when MINECART_DEBUG is set.
func logLevel() slog.Level {
	if os.Getenv("MINECART_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
