package chserver_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzAnalystRequest drives the real server as the analyst with a query,
// one URL parameter (a setting or a param_NAME) and its value. Invariants,
// whatever the input: no response holds the content of a secret file the
// engine could read; no file appears where a query names one; a table the
// analyst can see keeps its rows; the server keeps answering. Run longer
// with: go test -run '^$' -fuzz FuzzAnalystRequest -fuzztime 2m ./infra/chserver/
func FuzzAnalystRequest(f *testing.F) {
	dir := filepath.Join(os.TempDir(), "minecart-fuzz-"+strings.ReplaceAll(f.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	keyPath, out := filepath.Join(dir, "ledger.key"), filepath.Join(dir, "out.txt")
	const key = "fuzz-ledger-private-key-7f3c9a"
	if err := os.WriteFile(keyPath, []byte(key+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, s := range [][3]string{
		{"SELECT * FROM file('KEY', 'LineAsString')", "", ""},
		{"SELECT file('KEY')", "max_threads", "1"},
		{"SELECT `file`('KEY')", "", ""},
		{"SELECT * FROM url('http://127.0.0.1:1/', LineAsString)", "", ""},
		{"SELECT 1 INTO OUTFILE 'OUT'", "", ""},
		{"INSERT INTO FUNCTION file('OUT', 'LineAsString') SELECT 'x'", "", ""},
		{"SELECT {v:String}", "param_v", "007"},
		{"SELECT {v:String}", "param_v", "'); SELECT file('KEY') --"},
		{"SELECT {v:UInt8}", "param_v", ".."},
		{"SELECT 1", "readonly", "0"},
		{"SELECT 1", "format_schema", "KEY"},
		{"SELECT 1 FORMAT Template", "format_template_row", "KEY"},
		{"SELECT 1", "max_execution_time", "0"},
		{"SELECT count() FROM fuzz_rows SETTINGS max_threads = 1", "output_format_json_quote_64bit_integers", "1"},
		{"DROP TABLE fuzz_rows", "", ""},
		{"INSERT INTO fuzz_rows VALUES (2)", "", ""},
		{"SELECT '\\'', file('KEY') -- '", "", ""},
		{"SELECT 1 SETTINGS readonly = 0", "", ""},
		{"SELECT 1 // '\n, file('KEY') -- '", "", ""},
		{"SELECT {f:Identifier}('KEY')", "param_f", "file"},
		{"SELECT 1 /* nested /* */ , file('KEY') */", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	srv := server(f)
	exec(f, connect(f), "CREATE TABLE IF NOT EXISTS fuzz_rows (a UInt8) ENGINE = MergeTree ORDER BY a")
	exec(f, connect(f), "TRUNCATE TABLE fuzz_rows")
	exec(f, connect(f), "INSERT INTO fuzz_rows VALUES (1)")
	sub := strings.NewReplacer("KEY", keyPath, "OUT", out)
	f.Fuzz(func(t *testing.T, query, name, value string) {
		query, value = sub.Replace(query), sub.Replace(value)
		p := url.Values{}
		if name != "" {
			p.Set(name, value)
		}
		_, _, body := as(t, &srv.Analyst, http.MethodPost, query, p)
		if strings.Contains(body, key) {
			t.Fatalf("%q %s=%q: the secret leaked: %s", query, name, value, body)
		}
		if _, err := os.Stat(out); err == nil {
			os.Remove(out)
			t.Fatalf("%q %s=%q wrote %s", query, name, value, out)
		}
		st, _, b := as(t, &srv.Admin, http.MethodGet, "SELECT count(), sum(a) FROM fuzz_rows", nil)
		if st != 200 || b != "1\t1\n" {
			t.Fatalf("%q %s=%q: fuzz_rows now %d %q", query, name, value, st, b)
		}
	})
}
