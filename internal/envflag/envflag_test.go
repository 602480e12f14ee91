package envflag_test

import (
	"flag"
	"testing"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/internal/envflag"
)

// TestParse: the command line wins, then the environment; a present but
// empty variable empties its flag (ff alone would skip it); an absent one
// leaves the default.
func TestParse(t *testing.T) {
	t.Setenv("T_METRICS_ADDR", "")
	t.Setenv("T_HTTP_ADDR", "")
	t.Setenv("T_DATA_DIR", "/env")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	metrics := fs.String("metrics-addr", "127.0.0.1:9100", "")
	http := fs.String("http-addr", "127.0.0.1:8080", "")
	data := fs.String("data-dir", "data", "")
	keep := fs.String("keep", "default", "")
	if err := envflag.Parse(ff.NewFlagSetFrom("t", fs), []string{"-http-addr", "127.0.0.1:1"}, "T"); err != nil {
		t.Fatal(err)
	}
	if *metrics != "" || *http != "127.0.0.1:1" || *data != "/env" || *keep != "default" {
		t.Fatalf("metrics %q http %q data %q keep %q", *metrics, *http, *data, *keep)
	}
	if got := envflag.Name("MINECART", "kafka-tls.ca"); got != "MINECART_KAFKA_TLS_CA" {
		t.Fatalf("Name = %s", got)
	}
}

// TestEmptyBool: an empty variable of a boolean flag is an error, as on
// the command line.
func TestEmptyBool(t *testing.T) {
	t.Setenv("T_DEBUG", "")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Bool("debug", false, "")
	if err := envflag.Parse(ff.NewFlagSetFrom("t", fs), nil, "T"); err == nil {
		t.Fatal("an empty boolean variable was accepted")
	}
}
