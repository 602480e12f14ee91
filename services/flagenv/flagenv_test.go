package flagenv

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantErr bool
	}{
		{name: "default", want: "def", wantDur: time.Second},
		{name: "env", env: map[string]string{"MINECART_DATA_DIR": "/env", "MINECART_IDLE_TIMEOUT": "3s"}, want: "/env", wantDur: 3 * time.Second},
		{name: "flag wins", args: []string{"--data-dir", "/flag"}, env: map[string]string{"MINECART_DATA_DIR": "/env"}, want: "/flag", wantDur: time.Second},
		{name: "bad env value", env: map[string]string{"MINECART_IDLE_TIMEOUT": "soon"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			dir := fs.String("data-dir", "def", "")
			idle := fs.Duration("idle-timeout", time.Second, "")
			err := Parse(fs, "MINECART", tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if *dir != tc.want || *idle != tc.wantDur {
				t.Fatalf("got %q %v, want %q %v", *dir, *idle, tc.want, tc.wantDur)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("MINECART", "clickhouse.dsn-url"); got != "MINECART_CLICKHOUSE_DSN_URL" {
		t.Fatalf("got %s", got)
	}
}
