package chserver_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/infra/chserver"
)

// as sends a query as user u (nil: no credentials) with the credentials in
// the Basic header, and returns status, exception code and body.
func as(t testing.TB, u *chserver.User, method, query string, params url.Values, hdr ...string) (int, string, string) {
	t.Helper()
	if params == nil {
		params = url.Values{}
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(query)
	} else {
		params.Set("query", query)
	}
	req, err := http.NewRequest(method, server(t).BaseURL()+"/?"+params.Encode(), body)
	if err != nil {
		t.Fatal(err)
	}
	if u != nil {
		req.SetBasicAuth(u.Name, u.Password)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("X-ClickHouse-Exception-Code"), string(b)
}

// secret is a file standing for the ledger's private key: no query of any
// user may show its content.
func secret(t *testing.T) (path, content string) {
	t.Helper()
	content = "ledger-private-key-" + chserver.NewPassword()
	path = filepath.Join(t.TempDir(), "ledger.key")
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, content
}

func TestAuthentication(t *testing.T) {
	s := server(t)
	a := s.Analyst
	for _, tc := range []struct {
		name   string
		req    func(*http.Request)
		status int
		code   string
	}{
		{"no credentials", func(*http.Request) {}, 401, "194"},
		{"wrong password (basic)", func(r *http.Request) { r.SetBasicAuth(a.Name, a.Password+"x") }, 403, "516"},
		{"unknown user", func(r *http.Request) { r.SetBasicAuth("root", a.Password) }, 403, "516"},
		{"empty password", func(r *http.Request) { r.SetBasicAuth(a.Name, "") }, 403, "516"},
		{"wrong key (headers)", func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", a.Name)
			r.Header.Set("X-ClickHouse-Key", "nope")
		}, 403, "516"},
		{"wrong password (params)", func(r *http.Request) { addParams(r, "user", a.Name, "password", "nope") }, 403, "516"},
		{"headers and basic", func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", a.Name)
			r.Header.Set("X-ClickHouse-Key", a.Password)
			r.SetBasicAuth(a.Name, a.Password)
		}, 403, "516"},
		{"basic and params", func(r *http.Request) { r.SetBasicAuth(a.Name, a.Password); addParams(r, "user", a.Name) }, 403, "516"},
		{"bearer scheme", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+a.Password) }, 403, "516"},
		{"ssl certificate auth", func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", a.Name)
			r.Header.Set("X-ClickHouse-SSL-Certificate-Auth", "on")
		}, 403, "516"},
		{"basic", func(r *http.Request) { r.SetBasicAuth(a.Name, a.Password) }, 200, ""},
		{"headers", func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", a.Name)
			r.Header.Set("X-ClickHouse-Key", a.Password)
		}, 200, ""},
		{"params", func(r *http.Request) { addParams(r, "user", a.Name, "password", a.Password) }, 200, ""},
		{"basic by hand", func(r *http.Request) {
			r.Header.Set("Authorization", "basic "+base64.StdEncoding.EncodeToString([]byte(a.Name+":"+a.Password)))
		}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.BaseURL()+"/?query=SELECT+currentUser()", nil)
			tc.req(req)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || res.Header.Get("X-ClickHouse-Exception-Code") != tc.code {
				t.Fatalf("status %d code %q, want %d %q: %s", res.StatusCode, res.Header.Get("X-ClickHouse-Exception-Code"), tc.status, tc.code, b)
			}
			if tc.status != 200 && strings.Contains(string(b), a.Password) {
				t.Fatalf("the error shows the password: %s", b)
			}
		})
	}
	// /ping and a bare GET / stay open (health checks), and answer nothing.
	for _, path := range []string{"/ping", "/"} {
		res, err := http.Get(s.BaseURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "Ok.\n" {
			t.Errorf("%s: %d %q", path, res.StatusCode, b)
		}
	}
}

func addParams(r *http.Request, kv ...string) {
	q := r.URL.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	r.URL.RawQuery = q.Encode()
}

// TestHostIsOutOfReach: the attacks of issue 14, each refused for the
// analyst and, where it could matter, for the writer and the admin too.
func TestHostIsOutOfReach(t *testing.T) {
	s := server(t)
	keyPath, key := secret(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "written.txt")
	q := func(p string) string { return strings.NewReplacer("KEY", keyPath, "OUT", out).Replace(p) }
	attacks := []string{
		"SELECT * FROM file('KEY', 'LineAsString')",
		"SELECT * FROM file('/etc/passwd', 'LineAsString')",
		"SELECT file('KEY')",
		"SELECT FILE('KEY')",
		"SELECT `file`('KEY')",
		"SELECT \"file\"('KEY')",
		"SELECT file/**/('KEY')",
		"SELECT file -- comment\n('KEY')",
		"SELECT * FROM /* a */ file ( 'KEY' , LineAsString )",
		"SELECT * FROM (SELECT * FROM file('KEY', 'LineAsString'))",
		"WITH (SELECT file('KEY')) AS k SELECT k",
		"SELECT * FROM filesystem('/etc')",
		"SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
		"SELECT * FROM remote('127.0.0.1', system.one)",
		"SELECT * FROM s3('http://127.0.0.1:1/x', 'LineAsString')",
		"SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'LineAsString')",
		"SELECT * FROM mysql('127.0.0.1:1', 'a', 'b', 'c', 'd')",
		"SELECT * FROM postgresql('127.0.0.1:1', 'a', 'b', 'c', 'd')",
		"SELECT * FROM executable('x.sh', 'TSV', 'a String')",
		"SELECT * FROM input('a String')",
		"SELECT * FROM system.one INTO OUTFILE 'OUT'",
		"SELECT * FROM system.one INTO OUTFILE 'OUT' FORMAT TSV",
		"INSERT INTO FUNCTION file('OUT', 'LineAsString') SELECT 'x'",
		"INSERT INTO FUNCTION file('OUT', 'LineAsString') VALUES ('x')",
		"INSERT INTO t FROM INFILE 'KEY' FORMAT LineAsString",
		"CREATE TABLE f (s String) ENGINE = File(LineAsString, 'KEY')",
		"CREATE TABLE f (s String) ENGINE = URL('http://127.0.0.1:1/', CSV)",
		"CREATE TABLE f (s String) ENGINE = MergeTree ORDER BY s SETTINGS disk = disk(type = local, path = '" + outDir + "/')",
		"CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k SOURCE(FILE(path 'KEY' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"CREATE TABLE f AS file('KEY', 'LineAsString')",
		"ATTACH TABLE f FROM 'KEY' (s String) ENGINE = File(LineAsString)",
		"BACKUP TABLE system.one TO File('OUT')",
		"SYSTEM FLUSH LOGS",
		"EXECUTE AS default SELECT 1",
		"SELECT 1; SELECT * FROM file('KEY', 'LineAsString')",
		"SELECT $$x$$, file('KEY')",
		"SELECT '\\'', file('KEY') -- '",
		"SELECT /* /* */ file('KEY') -- */",
		"SELECT 1 // '\n, file('KEY') -- '",
		"SELECT 1 \\G SELECT file('KEY')",
		"SELECT 1\u00a0, file\u00a0('KEY')",
		"SELECT 1 # comment\nUNION ALL SELECT file('KEY')",
		"SELECT 1 SETTINGS allow_introspection_functions = 1",
		"SELECT 1 FORMAT Template SETTINGS format_template_row = 'KEY'",
		"SELECT 1 SETTINGS output_format_schema = 'OUT'",
		"SELECT * FROM merge(REGEXP('.*'), '.*') SETTINGS input_format_record_errors_file_path = 'OUT'",
	}
	users := map[string]chserver.User{"analyst": s.Analyst, "writer": s.Writer, "admin": s.Admin}
	for name, u := range users {
		u := u
		for _, a := range attacks {
			status, code, body := as(t, &u, http.MethodPost, q(a), nil)
			if status == 200 || strings.Contains(body, key) || strings.Contains(body, "root:") {
				t.Errorf("%s: %q: %d %s %s", name, a, status, code, body)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s wrote %s", name, out)
		}
	}
	// Values data carries expressions: they are checked as SQL too.
	exec(t, connect(t), "CREATE TABLE IF NOT EXISTS sec_values (s String) ENGINE = MergeTree ORDER BY s")
	for _, body := range []string{"INSERT INTO sec_values VALUES (file('" + keyPath + "'))", "INSERT INTO sec_values FORMAT Values (file('" + keyPath + "'))"} {
		if status, _, b := as(t, &s.Writer, http.MethodPost, body, nil); status == 200 {
			t.Errorf("%q: %d %s", body, status, b)
		}
	}
	p := url.Values{"query": {"INSERT INTO sec_values VALUES"}}
	req, _ := http.NewRequest(http.MethodPost, s.BaseURL()+"/?"+p.Encode(), strings.NewReader("(file('"+keyPath+"'))"))
	req.SetBasicAuth(s.Writer.Name, s.Writer.Password)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode == 200 {
		t.Errorf("VALUES data in the body: %v %v", res.StatusCode, err)
	}
	if _, _, b := as(t, &s.Admin, http.MethodGet, "SELECT count() FROM sec_values", nil); b != "0\n" {
		t.Errorf("sec_values holds %q", b)
	}
}

// TestAnalystIsReadOnly: the analyst reads, and cannot write, change the
// schema, raise its limits or switch readonly off.
func TestAnalystIsReadOnly(t *testing.T) {
	s := server(t)
	exec(t, connect(t), "CREATE TABLE IF NOT EXISTS sec_scores (v String, points Int64) ENGINE = MergeTree ORDER BY v")
	exec(t, connect(t), "INSERT INTO sec_scores VALUES ('7', 10)")
	a := s.Analyst
	if st, _, b := as(t, &a, http.MethodGet, "SELECT sum(points) FROM sec_scores", nil); st != 200 || b != "10\n" {
		t.Fatalf("analyst read: %d %s", st, b)
	}
	for _, q := range []string{
		"INSERT INTO sec_scores VALUES ('777', 777777)",
		"INSERT INTO sec_scores SELECT '777', 777777",
		"INSERT INTO sec_scores FORMAT TSV\n777\t777777\n",
		"CREATE TABLE sec_x (a UInt8) ENGINE = Memory",
		"DROP TABLE sec_scores",
		"TRUNCATE TABLE sec_scores",
		"ALTER TABLE sec_scores DELETE WHERE 1",
		"DELETE FROM sec_scores WHERE 1",
		"RENAME TABLE sec_scores TO sec_y",
		"OPTIMIZE TABLE sec_scores FINAL",
		"SET readonly = 0",
		"SET readonly = 2",
		"SELECT 1 SETTINGS readonly = 0",
		"SELECT 1 SETTINGS max_execution_time = 0",
		"SELECT 1 SETTINGS max_execution_time = 100000",
		"SELECT 1 SETTINGS max_memory_usage = 0",
		"SELECT 1 SETTINGS max_result_rows = 0",
		"SELECT 1 SETTINGS allow_ddl = 1",
		"SELECT 1 SETTINGS `max_execution_time` = 0",
		"SELECT 1 SETTINGS allow_introspection_functions",
		"SET allow_introspection_functions",
		"SELECT 1 SETTINGS max_execution_time = '0'",
		"SELECT 1 SETTINGS max_execution_time = -1",
		"SELECT 1 SETTINGS max_execution_time = 1e9",
		"KILL QUERY WHERE 1",
		"GRANT ALL ON *.* TO analyst",
		"CREATE USER x IDENTIFIED BY 'y'",
	} {
		if st, code, b := as(t, &a, http.MethodPost, q, nil); st == 200 || code == "" {
			t.Errorf("%q: %d %q %s", q, st, code, b)
		}
	}
	for _, p := range []url.Values{
		{"readonly": {"0"}, "query": {"INSERT INTO sec_scores VALUES ('777', 777777)"}},
		{"max_execution_time": {"0"}},
		{"max_execution_time": {"1000000"}},
		{"max_memory_usage": {"99999999999999"}},
		{"max_result_rows": {"0"}},
		{"allow_introspection_functions": {"1"}},
		{"format_schema": {"/etc/passwd"}},
		{"allow_ddl": {"1"}},
	} {
		q := p.Get("query")
		if q == "" {
			q = "SELECT 1"
		}
		p.Del("query")
		if st, code, b := as(t, &a, http.MethodPost, q, p); st == 200 || code == "" {
			t.Errorf("%v: %d %q %s", p, st, code, b)
		}
	}
	if _, _, b := as(t, &s.Admin, http.MethodGet, "SELECT sum(points) FROM sec_scores", nil); b != "10\n" {
		t.Errorf("after the analyst's attempts sec_scores sums %q", b)
	}
	// Limits: lowered by the analyst's own settings, enforced by the engine.
	st, code, b := as(t, &a, http.MethodGet, "SELECT number FROM numbers(100)", url.Values{"max_result_rows": {"10"}})
	if st == 200 || code != "396" {
		t.Errorf("max_result_rows=10: %d %s %s", st, code, b)
	}
	st, code, b = as(t, &a, http.MethodGet, "SELECT getSetting('max_execution_time'), getSetting('max_result_rows'), getSetting('readonly')", nil)
	if st != 200 || b != "60\t10000000\t0\n" {
		t.Errorf("analyst's limits: %d %s %s", st, code, b)
	}
	// The limits do not leak into the next request of another user.
	if _, _, b := as(t, &s.Admin, http.MethodGet, "SELECT getSetting('max_result_rows')", nil); b != "0\n" {
		t.Errorf("admin's max_result_rows after the analyst's request: %q", b)
	}
}

// TestWriterRole: the writer does what the sink and the migrations need
// (through clickhouse-go) and no more.
func TestWriterRole(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	opts, err := clickhouse.ParseDSN(s.WriterDSN())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS sec_w (v String, n UInt64) ENGINE = ReplacingMergeTree ORDER BY v",
		"CREATE TABLE IF NOT EXISTS sec_w_sum (v String, n SimpleAggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree ORDER BY v",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS sec_w_mv TO sec_w_sum AS SELECT v, n FROM sec_w",
		"ALTER TABLE sec_w MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
		"ALTER TABLE sec_w ADD PROJECTION IF NOT EXISTS by_n (SELECT * ORDER BY n)",
		"INSERT INTO sec_w VALUES ('a', 1)",
		"OPTIMIZE TABLE sec_w FINAL",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO sec_w")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if err := b.Append("k"+string(rune('a'+i%26)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TABLE sec_w", "TRUNCATE TABLE sec_w", "RENAME TABLE sec_w TO sec_z", "CREATE DATABASE sec_db",
		"CREATE TABLE sec_f (s String) ENGINE = File(TSV)", "ALTER TABLE sec_w FREEZE"} {
		if err := conn.Exec(ctx, q); err == nil {
			t.Errorf("writer: %s succeeded", q)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM sec_w").Scan(&n); err != nil || n == 0 {
		t.Fatalf("count %d %v", n, err)
	}
}

// TestBrowserRequestsRefused: a web page the operator visits can send a
// cross-site text/plain POST (no preflight); with or without credentials
// it is refused before the engine sees it.
func TestBrowserRequestsRefused(t *testing.T) {
	s := server(t)
	exec(t, connect(t), "CREATE TABLE IF NOT EXISTS sec_origin (a UInt8) ENGINE = MergeTree ORDER BY a")
	for _, hdr := range [][]string{
		{"Origin", "https://evil.example", "Content-Type", "text/plain"},
		{"Origin", "null"},
		{"Origin", "http://127.0.0.1:8123"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Sec-Fetch-Mode", "no-cors"},
	} {
		for _, u := range []*chserver.User{nil, &s.Admin} {
			st, code, b := as(t, u, http.MethodPost, "INSERT INTO sec_origin VALUES (1)", nil, hdr...)
			if st != 403 || code != "497" {
				t.Errorf("%v: %d %s %s", hdr, st, code, b)
			}
		}
	}
	if _, _, b := as(t, &s.Admin, http.MethodGet, "SELECT count() FROM sec_origin", nil); b != "0\n" {
		t.Errorf("sec_origin holds %q rows", b)
	}
	// A person typing the URL (Sec-Fetch-Site: none) with credentials is fine.
	if st, _, b := as(t, &s.Analyst, http.MethodGet, "SELECT 1", nil, "Sec-Fetch-Site", "none"); st != 200 {
		t.Errorf("Sec-Fetch-Site none: %d %s", st, b)
	}
}

// TestQueryParametersAreStrings: param_NAME values reach the engine as the
// exact text sent, typed by the placeholder, as on a ClickHouse server.
func TestQueryParametersAreStrings(t *testing.T) {
	s := server(t)
	// The value is the text of the parameter, read as the placeholder's
	// type in ClickHouse's escaped text format (as a server does): a
	// String comes back exactly, but for its backslash escapes.
	for _, v := range paramValues {
		st, code, b := as(t, &s.Analyst, http.MethodGet, "SELECT {v:String} FORMAT RowBinary", url.Values{"param_v": {v}})
		want, ok := unescapeText(v)
		if !ok {
			if st < 400 || st >= 500 {
				t.Errorf("%q (not valid escaped text): %d %s %s", v, st, code, b)
			}
			continue
		}
		if st != 200 {
			t.Errorf("%q: %d %s %s", v, st, code, b)
			continue
		}
		if got, ok := rowBinaryString(b); !ok || got != want {
			t.Errorf("%q came back as %q, want %q", v, got, want)
		}
	}
	for _, tc := range []struct{ typ, v, want string }{
		{"UInt8", "7", "7\n"}, {"Float64", "1.50", "1.5\n"}, {"Array(String)", "['a','b']", "['a','b']\n"},
		{"String", "007", "007\n"}, {"String", "1.50", "1.50\n"}, {"String", "-0", "-0\n"},
		{"Nullable(String)", "\\N", "\\N\n"}, {"String", "..", "..\n"},
	} {
		st, code, b := as(t, &s.Analyst, http.MethodGet, "SELECT {v:"+tc.typ+"}", url.Values{"param_v": {tc.v}})
		if st != 200 || b != tc.want {
			t.Errorf("{v:%s} = %q: %d %s %q, want %q", tc.typ, tc.v, st, code, b, tc.want)
		}
	}
	// A value that is not of the placeholder's type is the client's error.
	for _, v := range []string{"..", "7; DROP TABLE x", "'", "1e999", "007"} {
		st, _, b := as(t, &s.Analyst, http.MethodGet, "SELECT {v:UInt64}", url.Values{"param_v": {v}})
		if st < 400 || st >= 500 {
			t.Errorf("{v:UInt64} = %q: %d %s", v, st, b)
		}
	}
	// A parameter of an earlier request is never bound to a later one.
	as(t, &s.Admin, http.MethodGet, "SELECT {secret:String}", url.Values{"param_secret": {"admin-only"}})
	if st, code, b := as(t, &s.Analyst, http.MethodGet, "SELECT {secret:String}", nil); st != 400 || code != "456" {
		t.Errorf("unset parameter: %d %s %q", st, code, b)
	}
	if st, _, b := as(t, &s.Analyst, http.MethodGet, "SELECT {v:String}", url.Values{"param_v w": {"1"}}); st != 400 && st != 404 {
		t.Errorf("bad parameter name: %d %s", st, b)
	}
}

// paramValues are the seeds of FuzzParams and the values of
// TestQueryParametersAreStrings.
var paramValues = []string{"007", "1.50", "..", "", " ", "'", "\\", "\\'", "''", "a'b", "a\\'b", "\n", "\t", "\\N",
	"-1", "1e5", "0x10", "NULL", "null", "DEFAULT", "'); DROP TABLE x; --", "{v:String}", "$$", "é", "\x00", "\x7f",
	"\xff\xfe", "a\\nb", "%2e%2e", "1 SETTINGS readonly=0", "[1,2]", "(1)"}

// unescapeText is what ClickHouse's escaped text format reads from a
// whole field v, and false where it refuses v: a raw tab or newline ends
// the field, a backslash escapes the next character.
func unescapeText(v string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '\t', '\n':
			return "", false
		case '\\':
			if i+1 == len(v) {
				return "", false
			}
			i++
			switch e := v[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte('\a')
			case 'v':
				b.WriteByte('\v')
			case 'e':
				b.WriteByte(0x1b)
			case 'N':
				if len(v) == 2 {
					return "", true // NULL as a String is ""
				}
				return "", false
			case 'x':
				return "", false // not used by the seeds
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// rowBinaryString decodes one RowBinary String (uvarint length, bytes).
func rowBinaryString(b string) (string, bool) {
	n, shift, i := 0, 0, 0
	for ; i < len(b); i++ {
		n |= int(b[i]&0x7f) << shift
		shift += 7
		if b[i] < 0x80 {
			i++
			break
		}
	}
	if len(b) != i+n {
		return "", false
	}
	return b[i:], true
}

// TestVehicle007IsNotVehicle7: the owner API's query shape through
// clickhouse-go's server-side parameters. GET /v1/vehicles/007/position
// answered with vehicle 7's position while parameters went unquoted into
// SET (007 became 7); /v1/vehicles/%2e%2e/position was a 500.
func TestVehicle007IsNotVehicle7(t *testing.T) {
	s := server(t)
	exec(t, connect(t), "CREATE TABLE IF NOT EXISTS sec_pos (vehicle_id String, lat Float64) ENGINE = MergeTree ORDER BY vehicle_id")
	exec(t, connect(t), "TRUNCATE TABLE sec_pos")
	exec(t, connect(t), "INSERT INTO sec_pos VALUES ('7', 52.5), ('1.50', 13.4)")
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: s.Analyst.Name, Password: s.Analyst.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		v    string
		rows int
	}{{"7", 1}, {"007", 0}, {"7.0", 0}, {"1.50", 1}, {"1.5", 0}, {"..", 0}, {"'", 0}, {"a b", 0}} {
		ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{"v": tc.v}))
		rows, err := conn.Query(ctx, "SELECT lat FROM sec_pos WHERE vehicle_id = {v:String}")
		if err != nil {
			t.Errorf("%q: %v", tc.v, err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n != tc.rows {
			t.Errorf("vehicle %q: %d rows, want %d", tc.v, n, tc.rows)
		}
	}
}

// TestAnalystLimits: the engine stops an analyst's query at the
// max_execution_time it asked for (never above its ceiling), and an
// analyst cannot hold more than its share of the queue.
func TestAnalystLimits(t *testing.T) {
	s := server(t)
	st, code, b := as(t, &s.Analyst, http.MethodGet, "SELECT sleepEachRow(0.5) FROM numbers(20) SETTINGS max_block_size = 1",
		url.Values{"max_execution_time": {"1"}})
	if st == 200 || code != "159" {
		t.Errorf("max_execution_time=1: %d %s %s", st, code, b)
	}
	// Keep the engine busy (one statement at a time), queue the analyst's
	// 4 allowed requests behind it, then one more: refused at once.
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		as(t, &s.Admin, http.MethodGet, "SELECT sleepEachRow(0.5) FROM numbers(12) SETTINGS max_block_size = 1 FORMAT Null", nil)
	}()
	queued := make(chan int, 64)
	refused := false
	for i := 0; i < 64 && !refused; i++ {
		select {
		case <-busy:
			t.Fatal("the busy query ended before the analyst's queue filled")
		default:
		}
		go func() {
			st, _, _ := as(t, &s.Analyst, http.MethodGet, "SELECT 1", nil)
			queued <- st
		}()
		// The 5th concurrent request of the analyst is answered 503 at
		// once; the first 4 wait for the engine.
		select {
		case st := <-queued:
			// 200: answered before the busy query reached the engine.
			if st != 200 && st != 503 {
				t.Fatalf("request %d answered %d", i, st)
			}
			refused = st == 503
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !refused {
		t.Fatal("64 concurrent analyst requests, none refused")
	}
	// Another user is not held by the analyst's share.
	if st, _, b := as(t, &s.Writer, http.MethodGet, "SELECT 1", nil); st != 200 {
		t.Errorf("writer while the analyst is saturated: %d %s", st, b)
	}
	<-busy
}

// BenchmarkSmallQuery: a round trip of SELECT 1 as the analyst (password
// check, statement check on the text and on the engine's rendering,
// limits set and reset) and as the admin (no limits): the difference is
// the readonly user's per-request settings.
func BenchmarkSmallQuery(b *testing.B) {
	s := server(b)
	for _, u := range []*chserver.User{&s.Analyst, &s.Admin} {
		b.Run(u.Name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if st, _, body := as(b, u, http.MethodGet, "SELECT 1", nil); st != 200 {
					b.Fatal(st, body)
				}
			}
		})
	}
}
