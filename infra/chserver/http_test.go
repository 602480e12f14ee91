package chserver_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// do sends a request the way curl would and returns status, headers, body.
func do(t *testing.T, method, query string, params url.Values, body io.Reader, hdr ...string) (int, http.Header, string) {
	t.Helper()
	if params == nil {
		params = url.Values{}
	}
	if query != "" {
		params.Set("query", query)
	}
	req, err := http.NewRequest(method, server(t).URL()+"/?"+params.Encode(), body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func mustOK(t *testing.T, status int, body string) {
	t.Helper()
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
}

func TestHTTPHealth(t *testing.T) {
	base := server(t).URL()
	for path, want := range map[string]int{"/ping": 200, "/replicas_status": 200, "/": 200, "/nope": 404} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || (want == 200 && string(b) != "Ok.\n") {
			t.Errorf("GET %s: %d %q", path, res.StatusCode, b)
		}
	}
}

func TestHTTPFormats(t *testing.T) {
	// curl 'http://127.0.0.1:8123/?query=SELECT+1'
	st, h, body := do(t, "GET", "SELECT 1", nil, nil)
	mustOK(t, st, body)
	if body != "1\n" || h.Get("X-ClickHouse-Format") != "TabSeparated" || h.Get("X-ClickHouse-Query-Id") == "" ||
		!strings.HasPrefix(h.Get("Content-Type"), "text/tab-separated-values") {
		t.Fatalf("SELECT 1: %q %v", body, h)
	}
	var summary map[string]string
	if err := json.Unmarshal([]byte(h.Get("X-ClickHouse-Summary")), &summary); err != nil || summary["result_rows"] != "1" {
		t.Fatalf("summary %q: %v", h.Get("X-ClickHouse-Summary"), err)
	}

	// Table creation in the body, insert data in the body.
	st, _, body = do(t, "POST", "", nil, strings.NewReader("CREATE TABLE fmt (id UInt32, name String, tags Array(String), v Nullable(Float64)) ENGINE = MergeTree ORDER BY id"))
	mustOK(t, st, body)
	rows := `{"id":1,"name":"a","tags":["x","y"],"v":1.5}
{"id":2,"name":"b\"q","tags":[],"v":null}
`
	// As curl --data-binary @rows.jsonl sends it (a form content type).
	st, h, body = do(t, "POST", "INSERT INTO fmt FORMAT JSONEachRow", nil, strings.NewReader(rows),
		"Content-Type", "application/x-www-form-urlencoded")
	mustOK(t, st, body)
	if err := json.Unmarshal([]byte(h.Get("X-ClickHouse-Summary")), &summary); err != nil || summary["written_rows"] != "2" {
		t.Fatalf("insert summary %q", h.Get("X-ClickHouse-Summary"))
	}
	// The statement and its data in one body, CSV; a gzip-encoded body.
	st, _, body = do(t, "POST", "", nil, strings.NewReader("INSERT INTO fmt FORMAT CSV\n3,c,\"['z']\",2.5\n"),
		"Content-Type", "application/x-www-form-urlencoded")
	mustOK(t, st, body)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "4\td\t[]\t\\N\n")
	zw.Close()
	st, _, body = do(t, "POST", "INSERT INTO fmt FORMAT TabSeparated", nil, &gz, "Content-Encoding", "gzip")
	mustOK(t, st, body)
	// VALUES with the data in the body.
	st, _, body = do(t, "POST", "INSERT INTO fmt VALUES", nil, strings.NewReader("(5, 'e', ['w'], 0)"))
	mustOK(t, st, body)

	for _, tc := range []struct {
		query  string
		params url.Values
		want   string
		ctype  string
	}{
		{"SELECT id, name FROM fmt ORDER BY id FORMAT JSONEachRow", nil,
			`{"id":1,"name":"a"}` + "\n" + `{"id":2,"name":"b\"q"}` + "\n" + `{"id":3,"name":"c"}` + "\n" + `{"id":4,"name":"d"}` + "\n" + `{"id":5,"name":"e"}` + "\n",
			"application/x-ndjson"},
		{"SELECT id, tags, v FROM fmt WHERE id <= 2 ORDER BY id", url.Values{"default_format": {"CSV"}},
			"1,\"['x','y']\",1.5\n2,\"[]\",\\N\n", "text/csv"},
		{"SELECT id, v FROM fmt WHERE id IN (2, 4) ORDER BY id FORMAT TabSeparatedWithNames", nil,
			"id\tv\n2\t\\N\n4\t\\N\n", "text/tab-separated-values"},
		{"SELECT getSetting('max_threads')", url.Values{"max_threads": {"3"}}, "3\n", ""},
		{"SELECT {n:UInt32} + 1", url.Values{"param_n": {"41"}}, "42\n", ""},
		{"SELECT currentDatabase()", url.Values{"database": {"system"}}, "system\n", ""},
	} {
		st, h, body := do(t, "GET", tc.query, tc.params, nil)
		mustOK(t, st, body)
		if body != tc.want || !strings.HasPrefix(h.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s %v:\n got %q (%s)\nwant %q", tc.query, tc.params, body, h.Get("Content-Type"), tc.want)
		}
	}
	// URL settings apply to one request only.
	st, _, body = do(t, "GET", "SELECT getSetting('max_threads') = 3, currentDatabase()", nil, nil)
	mustOK(t, st, body)
	if body != "0\tdefault\n" {
		t.Errorf("settings leaked: %q", body)
	}

	// Native: revision 0 without client_protocol_version, block info with it.
	for _, rev := range []uint64{0, 54460} {
		p := url.Values{"default_format": {"Native"}}
		if rev > 0 {
			p.Set("client_protocol_version", "54460")
		}
		st, h, body := do(t, "GET", "SELECT id, name FROM fmt ORDER BY id", p, nil)
		mustOK(t, st, body)
		if h.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("native content type %q", h.Get("Content-Type"))
		}
		rd := chproto.NewReader(strings.NewReader(body))
		total := 0
		for {
			var b proto.Block
			if err := b.Decode(rd, rev); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("native rev %d: %v", rev, err)
			}
			total += b.Rows()
			if strings.Join(b.ColumnsNames(), ",") != "id,name" {
				t.Errorf("native rev %d: columns %v", rev, b.ColumnsNames())
			}
		}
		if total != 5 {
			t.Errorf("native rev %d: %d rows", rev, total)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		method, query string
		params        url.Values
		body          string
		status        int
		code          string
	}{
		{"GET", "SELEC 1", nil, "", 400, "62"},
		{"GET", "SELECT 1; DROP TABLE fmt", nil, "", 400, "62"},
		{"GET", "SELECT * FROM missing_table", nil, "", 404, "60"},
		{"GET", "CREATE TABLE x (a UInt8) ENGINE = Memory", nil, "", 403, "164"},
		{"POST", "SELECT 1", url.Values{"no_such_setting": {"1"}}, "", 404, "115"},
		{"POST", "", nil, "", 400, "62"},
		{"POST", "INSERT INTO missing_table FORMAT CSV", nil, "1\n", 404, "60"},
		{"POST", "SELECT 1", url.Values{"readonly": {"1"}}, "", 200, ""},
		{"POST", "DROP TABLE IF EXISTS y", url.Values{"readonly": {"1"}}, "", 403, "164"},
	} {
		st, h, body := do(t, tc.method, tc.query, tc.params, strings.NewReader(tc.body))
		if st != tc.status || h.Get("X-ClickHouse-Exception-Code") != tc.code {
			t.Errorf("%s %q: %d code %q body %q", tc.method, tc.query, st, h.Get("X-ClickHouse-Exception-Code"), body)
			continue
		}
		if tc.code != "" && !strings.HasPrefix(body, "Code: "+tc.code+". DB::Exception: ") {
			t.Errorf("%s %q: body %q", tc.method, tc.query, body)
		}
	}
	// Malformed insert data: a parse error, and the good table untouched.
	st, _, body := do(t, "POST", "", nil, strings.NewReader("CREATE TABLE bad (a UInt32) ENGINE = MergeTree ORDER BY a"))
	mustOK(t, st, body)
	st, h, body := do(t, "POST", "INSERT INTO bad FORMAT JSONEachRow", nil, strings.NewReader("{\"a\":1}\n{\"a\":\"x\"}\n"))
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") == "" {
		t.Errorf("bad insert: %d %q", st, body)
	}
	st, _, body = do(t, "GET", "SELECT count() FROM bad", nil, nil)
	if body != "0\n" {
		t.Errorf("after bad insert: %d %q", st, body)
	}
}

// TestNativeUnsupportedType: a column clickhouse-go's decoder cannot
// re-encode fails that request with an exception; the server keeps serving.
func TestNativeUnsupportedType(t *testing.T) {
	p := url.Values{"default_format": {"Native"}, "client_protocol_version": {"54460"}}
	st, h, body := do(t, "GET", "SELECT uniqState(number) FROM numbers(10)", p, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") == "" || !strings.HasPrefix(body, "Code: ") {
		t.Fatalf("%d %q", st, body)
	}
	st, _, body = do(t, "GET", "SELECT 1", nil, nil)
	if st != 200 || body != "1\n" {
		t.Fatalf("after: %d %q", st, body)
	}
}

// TestSessionStatementsDoNotLeak: SET and USE affect their own request
// only (no HTTP sessions), but are still validated.
func TestSessionStatementsDoNotLeak(t *testing.T) {
	st, _, body := do(t, "POST", "SET max_threads = 1", nil, nil)
	mustOK(t, st, body)
	st, h, _ := do(t, "POST", "SET no_such_setting = 1", nil, nil)
	if st != 404 || h.Get("X-ClickHouse-Exception-Code") != "115" {
		t.Errorf("unknown setting: %d %s", st, h.Get("X-ClickHouse-Exception-Code"))
	}
	st, _, body = do(t, "POST", "USE system", nil, nil)
	mustOK(t, st, body)
	st, _, body = do(t, "GET", "SELECT getSetting('max_threads') = 1, currentDatabase()", nil, nil)
	if st != 200 || body != "0\tdefault\n" {
		t.Errorf("leaked session state: %d %q", st, body)
	}
}

// TestRequestSettingsAreExact: the owner applies each request's settings
// and query parameters as a difference to the previous request's (one SET);
// every request must still see exactly its own settings and the defaults
// for the rest, also after a request whose settings the engine refused.
func TestRequestSettingsAreExact(t *testing.T) {
	const probe = "SELECT getSetting('max_threads'), getSetting('max_result_rows'), getSetting('max_block_size')"
	var defaults string
	{
		st, _, body := do(t, "GET", probe, nil, nil)
		mustOK(t, st, body)
		defaults = body
	}
	def := strings.Split(strings.TrimSuffix(defaults, "\n"), "\t")
	for i, c := range []struct {
		params url.Values
		query  string
		want   string // body; "" = an error status
	}{
		{url.Values{"max_threads": {"1"}, "max_result_rows": {"1000"}}, probe, "1\t1000\t" + def[2] + "\n"},
		{url.Values{"max_threads": {"1"}}, probe, "1\t" + def[1] + "\t" + def[2] + "\n"},
		{url.Values{"max_threads": {"1"}}, probe, "1\t" + def[1] + "\t" + def[2] + "\n"}, // nothing to change
		{url.Values{"max_block_size": {"777"}}, probe, def[0] + "\t" + def[1] + "\t777\n"},
		{nil, probe, defaults},
		{url.Values{"param_x": {"a"}, "max_threads": {"2"}}, "SELECT {x:String}, getSetting('max_threads')", "a\t2\n"},
		{url.Values{"param_x": {"b"}}, "SELECT {x:String}, getSetting('max_threads')", "b\t" + def[0] + "\n"},
		{url.Values{"param_x": {"b"}, "param_y": {"c"}}, "SELECT {x:String}, {y:String}", "b\tc\n"},
		{url.Values{"param_x": {"d"}}, "SELECT {y:String}", ""}, // y was set by the request before: not here
		{url.Values{"max_threads": {"3"}, "max_block_size": {"not a number"}}, probe, ""},
		{nil, probe, defaults},
		{url.Values{"max_threads": {"3"}}, probe, "3\t" + def[1] + "\t" + def[2] + "\n"},
		{nil, probe, defaults},
	} {
		st, _, body := do(t, "GET", c.query, c.params, nil)
		if c.want == "" {
			if st == 200 {
				t.Errorf("%d: %v %q: want an error, got %q", i, c.params, c.query, body)
			}
			continue
		}
		if st != 200 || body != c.want {
			t.Errorf("%d: %v %q: %d %q, want %q", i, c.params, c.query, st, body, c.want)
		}
	}
}
