package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v4"
)

// commands returns every command of the tree with its path under the root.
func commands() map[string]*ff.Command {
	out := map[string]*ff.Command{}
	var walk func(prefix []string, c *ff.Command)
	walk = func(prefix []string, c *ff.Command) {
		out[strings.Join(prefix, " ")] = c
		for _, s := range c.Subcommands {
			walk(append(slices.Clone(prefix), s.Name), s)
		}
	}
	walk(nil, newRoot(io.Discard))
	return out
}

// TestHelp walks the tree: every command has a short help and a usage
// line, and `minecart PATH -h` prints its help (with its subcommands and
// flags) and is no error.
func TestHelp(t *testing.T) {
	for path, c := range commands() {
		if c.ShortHelp == "" || c.Usage == "" || c.Exec == nil {
			t.Errorf("%q: short help %q, usage %q, exec %v", path, c.ShortHelp, c.Usage, c.Exec != nil)
		}
		var stderr bytes.Buffer
		args := append(strings.Fields(path), "-h")
		if err := run(t.Context(), args, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: %v", args, err)
		}
		help := stderr.String()
		for _, want := range []string{c.Usage, c.ShortHelp, "MINECART_<FLAG>"} {
			if !strings.Contains(help, want) {
				t.Errorf("%q: help lacks %q:\n%s", args, want, help)
			}
		}
		for _, s := range c.Subcommands {
			if !strings.Contains(help, s.Name+" ") {
				t.Errorf("%q: help lacks subcommand %s", args, s.Name)
			}
		}
		_ = c.Flags.WalkFlags(func(f ff.Flag) error {
			if name, _ := f.GetLongName(); !strings.Contains(help, "-"+name+" ") {
				t.Errorf("%q: help lacks flag -%s", args, name)
			}
			return nil
		})
	}
}

// TestUsageErrors: a command line that names nothing to run, or an
// unknown command or flag, prints the help and is an error named by the
// command.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "want a command"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"devices"}, "devices: want a command"},
		{[]string{"ledger", "head"}, `ledger: unknown command "head"`},
		{[]string{"run", "--nope"}, `run: parse args: unknown flag "nope"`},
		{[]string{"migrate", "extra"}, `migrate: unexpected arguments ["extra"]`},
	} {
		var stderr bytes.Buffer
		err := run(t.Context(), tc.args, io.Discard, &stderr)
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
		}
		if !strings.Contains(stderr.String(), "USAGE") {
			t.Errorf("%q: no help:\n%s", tc.args, stderr.String())
		}
		var coded interface{ ExitCode() int }
		if !errors.As(err, &coded) || coded.ExitCode() != 2 {
			t.Errorf("%q: a usage error exits 2, got %v", tc.args, err)
		}
	}
}

// TestEnvironment: flags of a command and of its parent come from
// MINECART_* variables; the command line wins.
func TestEnvironment(t *testing.T) {
	t.Setenv("MINECART_CLICKHOUSE", "http://127.0.0.1:1/default")
	if err := run(t.Context(), []string{"migrate"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1:") {
		t.Errorf("migrate with MINECART_CLICKHOUSE: %v", err)
	}
	if err := run(t.Context(), []string{"migrate", "--clickhouse", "http://127.0.0.1:2/default"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "127.0.0.1:2:") {
		t.Errorf("migrate --clickhouse: %v", err)
	}
	// A present but empty variable empties its flag: no default DSN is dialled.
	t.Setenv("MINECART_CLICKHOUSE", "")
	if err := run(t.Context(), []string{"migrate"}, io.Discard, io.Discard); err == nil || strings.Contains(err.Error(), "8123") {
		t.Errorf("migrate with MINECART_CLICKHOUSE=: %v", err)
	}
	t.Setenv("MINECART_KAFKA_SASL", "nonsense")
	for _, args := range [][]string{{"devices", "list"}, {"accounts", "list"}, {"catalog", "list"}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "kafka-sasl") {
			t.Errorf("%q with MINECART_KAFKA_SASL: %v", args, err)
		}
	}
}

// TestREADME: the README's "The command line" block lists exactly the
// declared commands and subcommands, in their order.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## The command line\n")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`README.md: no "## The command line" section with a sh block`)
	}
	var got []string
	for _, line := range strings.Split(block, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "./bin/minecart" {
			continue
		}
		cmd := f[1]
		if len(f) > 2 && strings.Contains(f[2], "|") {
			cmd += " " + strings.ReplaceAll(f[2], "|", " ")
		}
		got = append(got, cmd)
	}
	var want []string
	for _, c := range newRoot(io.Discard).Subcommands {
		cmd := c.Name
		for _, s := range c.Subcommands {
			cmd += " " + s.Name
		}
		want = append(want, cmd)
	}
	if !slices.Equal(got, want) {
		t.Errorf("README lists\n  %q\nthe tree declares\n  %q", got, want)
	}
}
