// Command minecart is the command line of minecart: it runs the whole
// pipeline on one machine (run), its embedded infrastructure alone (broker,
// clickhouse, migrate), and the operators' and owners' tools (devices,
// accounts, catalog, ledger). The commands are one declared tree (ff):
// their help is generated from it, and every flag can also be set as
// MINECART_<FLAG>.
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
	"syscall"

	"github.com/peterbourgon/ff/v4"
	"github.com/peterbourgon/ff/v4/ffhelp"

	"github.com/minecart/minecart/internal/envflag"

	"github.com/minecart/minecart/services/daemon"
)

func main() {
	// Everything minecart writes (data directories, keys, credentials, the
	// broker's and ClickHouse's files) is private to its user: kfake and
	// chDB create theirs 0644/0755 otherwise (docs/security.md).
	syscall.Umask(0o077)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	daemon.Main("minecart", func(ctx context.Context, args []string) error { return run(ctx, args, os.Stdout, os.Stderr) })
}

// logLevel is info, or debug when MINECART_DEBUG is set.
func logLevel() slog.Level {
	if os.Getenv("MINECART_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// newRoot declares every command of minecart; they write their results to
// stdout.
func newRoot(stdout io.Writer) *ff.Command {
	root := &ff.Command{Name: "minecart", Usage: "minecart COMMAND [FLAGS]", Flags: ff.NewFlagSet("minecart"),
		ShortHelp: "drive and mine: the whole pipeline on one machine, its infrastructure and its tools",
		LongHelp:  "`minecart COMMAND -h` gives a command's flags. MINECART_DEBUG=1 logs at debug level."}
	root.Subcommands = []*ff.Command{
		runCommand(), brokerCommand(stdout), clickhouseCommand(), migrateCommand(stdout),
		devicesCommand(stdout), accountsCommand(stdout, os.Stdin), catalogCommand(stdout), transfersCommand(stdout), ledgerCommand(stdout), witnessCommand(stdout), campaignsCommand(stdout),
	}
	for _, c := range root.Subcommands {
		parents(c)
	}
	root.Exec = wantCommand
	return root
}

// parents gives every command with subcommands an Exec that asks for one,
// and lists them in its short help.
func parents(c *ff.Command) {
	var names []string
	for _, s := range c.Subcommands {
		parents(s)
		names = append(names, s.Name)
	}
	if len(names) > 0 {
		c.ShortHelp += ": " + strings.Join(names, " | ")
		c.Exec = wantCommand
	}
}

// wantCommand is the Exec of a command that only has subcommands.
func wantCommand(_ context.Context, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	return usageError{errors.New("want a command")}
}

// usageError is a command line that does not say what to run (or -h):
// the help of the command follows.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// ExitCode is 2 for a usage error, as with the flag package.
func (usageError) ExitCode() int { return 2 }

// run parses args into the tree and runs the command they select. Help
// (-h, or a command line that selects nothing to run) goes to stderr;
// errors are named by the command: "devices add: ...".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout)
	err := root.Parse(args, ff.WithEnvVarPrefix(daemon.EnvPrefix))
	if err == nil {
		err = envflag.Empty(root.GetSelected().Flags, daemon.EnvPrefix)
	}
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // ff names the command; name it by its path below
		}
		err = usageError{err}
	} else {
		err = root.Run(ctx)
	}
	if errors.As(err, new(usageError)) {
		fmt.Fprint(stderr, append(ffhelp.Command(root), daemon.EnvHelp()))
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	if name := path(root.GetSelected()); name != "" {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return err
}

// path is a command's name under the root: "devices add".
func path(c *ff.Command) string {
	var names []string
	for ; c != nil && c.GetParent() != nil; c = c.GetParent() {
		names = append([]string{c.Name}, names...)
	}
	return strings.Join(names, " ")
}

// newCommand declares a command under parent (nil: the root) that takes
// the arguments args ("" for none, else their names for the usage line):
// flags declares its flags on a standard flag set (so -name and --name are
// the same), parsed by ff with the MINECART_* environment; the flags of
// parent, if any, are valid here too, and flags may also follow the
// arguments. exec gets the arguments.
func newCommand(parent *ff.Command, name, args, short string, flags func(fs *flag.FlagSet), exec func(ctx context.Context, args []string) error) *ff.Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if flags != nil {
		flags(fs)
	}
	ffs := ff.NewFlagSetFrom(name, fs)
	usage := "minecart " + name
	var parentFlags *ff.FlagSet
	if parent != nil {
		parentFlags = parent.Flags.(*ff.FlagSet)
		ffs.SetParent(parentFlags)
		usage = "minecart " + parent.Name + " " + name
	}
	if args != "" {
		usage += " " + args
	}
	c := &ff.Command{Name: name, Usage: usage + " [FLAGS]", ShortHelp: short, Flags: ffs}
	if exec != nil {
		c.Exec = func(ctx context.Context, rest []string) error {
			var pos []string
			for len(rest) > 0 {
				if !strings.HasPrefix(rest[0], "-") || rest[0] == "-" {
					pos, rest = append(pos, rest[0]), rest[1:]
					continue
				}
				// Flags after an argument: parsed last, so they win too.
				more := ff.NewFlagSetFrom(name, fs).SetParent(parentFlags)
				if err := more.Parse(rest); err != nil {
					return usageError{err}
				}
				rest = more.GetArgs()
			}
			if args == "" && len(pos) > 0 {
				return usageError{fmt.Errorf("unexpected arguments %q", pos)}
			}
			return exec(ctx, pos)
		}
	}
	return c
}
