package chserver

import (
	"strconv"
	"strings"
	"testing"
)

func testPolicy() *policy {
	return newPolicy([]string{"file", "url", "numbers", "remote", "s3", "executable", "input"},
		[]string{"MergeTree", "File", "URL", "Memory", "Executable"},
		[]string{"max_threads", "max_execution_time", "readonly", "output_format_json_quote_64bit_integers",
			"allow_introspection_functions", "format_schema", "async_insert", "index_granularity", "extremes"},
		func() Limits { var l Limits; l.defaults(); return l }())
}

var (
	analyst = &account{User: User{Name: "analyst", Role: RoleReadonly}}
	writer  = &account{User: User{Name: "writer", Role: RoleWriter}}
	admin   = &account{User: User{Name: "admin", Role: RoleAdmin}}
)

func TestCheckStatement(t *testing.T) {
	p := testPolicy()
	for _, tc := range []struct {
		u   *account
		sql string
		ok  bool
	}{
		{analyst, "SELECT count() FROM telemetry WHERE vehicle_id = {v:String}", true},
		{analyst, "select * from numbers(10) format JSON", true},
		{analyst, "(SELECT 1) UNION ALL (SELECT 2)", true},
		// README.md's analyst query: the latest revision of each scored day.
		{analyst, "SELECT vehicle_id, date, revision, score, distance_km, points, flags FROM (SELECT * FROM daily_scores ORDER BY date, vehicle_id, revision DESC, src_offset DESC LIMIT 1 BY date, vehicle_id) ORDER BY points DESC LIMIT 10 FORMAT PrettyCompact", true},
		{analyst, "SELECT name FROM system.settings WHERE name = 'x'", true},
		{analyst, "SELECT 1 SETTINGS max_threads = 2, output_format_json_quote_64bit_integers = 0", true},
		{analyst, "SELECT 1 SETTINGS max_execution_time = 5", true},
		{analyst, "SET max_threads = 1", true},
		{analyst, "SHOW TABLES", true},
		{analyst, "DESCRIBE TABLE telemetry", true},
		{analyst, "EXPLAIN SELECT 1", true},
		{analyst, "SELECT 'file(' AS s, `x` FROM t -- file(\n", true},
		{analyst, "SELECT 1;", true},
		{analyst, "SELECT 1; SELECT 2", false},
		{analyst, "SELECT file('/etc/passwd')", false},
		{analyst, "SELECT `FiLe`('/etc/passwd')", false},
		{analyst, "SELECT * FROM url('http://x', CSV)", false},
		{analyst, "SELECT 1 INTO OUTFILE '/tmp/x'", false},
		{analyst, "SELECT 1 SETTINGS max_execution_time = 0", false},
		{analyst, "SELECT 1 SETTINGS max_execution_time = 61", false},
		{analyst, "SELECT 1 SETTINGS readonly = 0", false},
		{analyst, "SELECT 1 SETTINGS readonly = 1", true},
		{analyst, "SELECT 1 SETTINGS extremes, allow_introspection_functions", false},
		{analyst, "SELECT 1 SETTINGS x.y = 1", false},
		{analyst, "SET allow_introspection_functions", false},
		{analyst, "SELECT settings FROM t", false}, // unquoted: read as a SETTINGS clause
		{analyst, "SELECT `settings` FROM t", true},
		{analyst, "INSERT INTO t VALUES (1)", false},
		{analyst, "CREATE TABLE t (a UInt8) ENGINE = Memory", false},
		{analyst, "EXECUTE AS admin SELECT 1", false},
		{analyst, "SELECT $$x$$", false},
		{analyst, "SELECT 1 /* /* */ */", false},
		{analyst, "SELECT 0xfile('x')", false},
		{analyst, "SELECT 'unterminated", false},
		{analyst, "SELECT #x\n1", false},
		{analyst, "SELECT 1 # ok\n", true},
		{analyst, "SELECT é", false},
		{analyst, "SELECT 1 // '\n, file('k') -- '", false},
		{analyst, "SELECT 1 // comment\n", true},
		{analyst, "SELECT 1 \\G", false},
		{analyst, "SELECT 'a\x00', 1", false},
		{analyst, "SELECT {f:Identifier}('x')", false},
		{analyst, "SELECT * FROM {t:Identifier}", true},
		{analyst, "SELECT 1 SETTINGS {s:Identifier} = 1", false},
		{writer, "CREATE TABLE t (a UInt8) ENGINE = {e:Identifier}", false},
		{writer, "CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 8192", true},
		{writer, "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO t AS SELECT 1 AS a", true},
		{writer, "CREATE TABLE t (a UInt8) ENGINE = File(TSV)", false},
		{writer, "CREATE TABLE t (a UInt8) ENGINE = `Executable`", false},
		{writer, "CREATE TABLE t ENGINE = Memory AS SELECT * FROM file('x')", false},
		{writer, "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(FILE(path 'x')) LAYOUT(FLAT()) LIFETIME(0)", false},
		{writer, "CREATE DATABASE d", false},
		{writer, "CREATE FUNCTION f AS x -> x", false},
		{writer, "ALTER TABLE t FREEZE", false},
		{writer, "ALTER TABLE t ADD COLUMN b UInt8", true},
		{writer, "INSERT INTO t SETTINGS async_insert = 1 FORMAT JSONEachRow", true},
		{writer, "INSERT INTO FUNCTION file('x') SELECT 1", false},
		{writer, "DROP TABLE t", false},
		{writer, "SELECT 1 SETTINGS format_schema = 'x'", false},
		{admin, "DROP TABLE IF EXISTS t", true},
		{admin, "TRUNCATE TABLE t", true},
		{admin, "TRUNCATE t", true},
		{admin, "DROP DATABASE default", false},
		{admin, "SYSTEM FLUSH LOGS", false},
		{admin, "ATTACH TABLE t FROM '/x'", false},
		{admin, "KILL QUERY WHERE 1", false},
		{admin, "DELETE FROM t WHERE 1", true},
		{writer, "DELETE FROM t WHERE 1", false},
	} {
		err := p.checkStatement(tc.u, tc.sql, -1)
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: %v", tc.u.Name, tc.sql, err)
		}
	}
}

// FuzzSetStatement: whatever the name and value of a URL parameter, its
// SET statement is refused or is exactly SET name = literal, one
// statement, whose literal is the value (query parameters: always a
// string literal holding the value's exact bytes).
func FuzzSetStatement(f *testing.F) {
	for _, v := range []string{"007", "1.50", "..", "", "'", `\`, `\'`, "a'b", "\x00", "\n", "-1", "1.2.3", "-",
		"'); DROP TABLE x; --", "{v:String}", "$$", "é", "\xff", "1 SETTINGS readonly=0", "/*", "--", "0x10", "1e5"} {
		f.Add("param_v", v)
		f.Add("max_threads", v)
	}
	f.Add("param_a b", "1")
	f.Add("max threads", "1")
	f.Add("param_", "1")
	f.Fuzz(func(t *testing.T, name, value string) {
		stmt, err := setStatement(name, value)
		if err != nil {
			if identRe.MatchString(name) {
				t.Fatalf("%q refused: %v", name, err)
			}
			return
		}
		if !identRe.MatchString(name) {
			t.Fatalf("bad name %q accepted", name)
		}
		if strings.ContainsRune(stmt, 0) {
			t.Fatalf("NUL in %q", stmt)
		}
		toks, err := lex(stmt)
		if err != nil {
			t.Fatalf("%q does not lex: %v", stmt, err)
		}
		if len(toks) != 4 && !(len(toks) == 5 && toks[3].text == "-") {
			t.Fatalf("%q: %d tokens", stmt, len(toks))
		}
		if toks[0].text != "SET" || toks[1].kind != tokWord || toks[1].text != name || toks[2].text != "=" {
			t.Fatalf("%q: %+v", stmt, toks)
		}
		lit := toks[len(toks)-1]
		if strings.HasPrefix(name, "param_") && lit.kind != tokString {
			t.Fatalf("query parameter %q passed as %v in %q", value, lit.kind, stmt)
		}
		if lit.kind == tokString && lit.text != value {
			t.Fatalf("%q: literal %q, want %q", stmt, lit.text, value)
		}
	})
}

// FuzzCheckSetting: a readonly user's setting is accepted only when it is
// on the allow-list, names no file, path or URL, and, for a limit, lowers
// it.
func FuzzCheckSetting(f *testing.F) {
	for _, s := range [][2]string{{"max_threads", "2"}, {"max_execution_time", "0"}, {"max_execution_time", "60"},
		{"max_execution_time", "61"}, {"max_execution_time", "1e9"}, {"readonly", "0"}, {"readonly", "1"},
		{"format_schema", "x"}, {"output_format_schema", "/x"}, {"format_template_row", "/etc/passwd"},
		{"allow_introspection_functions", "1"}, {"max_memory_usage", "-1"}, {"max_result_rows", "NaN"},
		{"max_result_rows", "+Inf"}, {"input_format_record_errors_file_path", "/x"}, {"param_x", "1"}} {
		f.Add(s[0], s[1])
	}
	p := testPolicy()
	caps := p.limits.caps()
	f.Fuzz(func(t *testing.T, name, value string) {
		if p.checkSetting(analyst, name, value, true) != nil {
			return
		}
		low := strings.ToLower(name)
		for _, part := range settingDeniedParts {
			if strings.Contains(low, part) {
				t.Fatalf("%s accepted", name)
			}
		}
		if c, ok := caps[name]; ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || !(n > 0 && n <= float64(c)) {
				t.Fatalf("%s = %q accepted (cap %d)", name, value, c)
			}
			return
		}
		family := false
		for _, fam := range settingFamilies {
			family = family || strings.HasPrefix(name, fam)
		}
		if name == "readonly" && value != "1" || !readonlySettings[name] && !family {
			t.Fatalf("%s = %q accepted", name, value)
		}
	})
}

// FuzzCheckStatement: the checker never panics, and a statement it
// accepts for the analyst lexes into tokens holding no denied call, no
// OUTFILE / INFILE word and no second statement.
func FuzzCheckStatement(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT file('x')", "SELECT `file`('x')", "SELECT 1 INTO OUTFILE 'x'",
		"SELECT 1 SETTINGS readonly = 0", "SELECT '\\'', file('x') -- '", "SELECT /* */ 1", "SELECT 1; SELECT 2",
		"SELECT * FROM numbers(10) SETTINGS max_threads = 1 FORMAT JSON", "SELECT \"file\"\n(\n'x')", "SELECT 1e-5, 0x1F, .5"} {
		f.Add(s)
	}
	p := testPolicy()
	f.Fuzz(func(t *testing.T, sql string) {
		if p.checkStatement(analyst, sql, -1) != nil {
			return
		}
		toks, err := lex(sql)
		if err != nil {
			t.Fatalf("accepted %q that does not lex: %v", sql, err)
		}
		for j, tok := range toks {
			low := strings.ToLower(tok.text)
			if (tok.kind == tokWord || tok.kind == tokQIdent) && j+1 < len(toks) && toks[j+1].text == "(" && p.denied[low] {
				t.Fatalf("accepted %q calling %s", sql, tok.text)
			}
			if tok.kind == tokWord && (low == "outfile" || low == "infile") {
				t.Fatalf("accepted %q with %s", sql, tok.text)
			}
			if tok.text == ";" && j+1 < len(toks) {
				t.Fatalf("accepted two statements %q", sql)
			}
		}
	})
}

// BenchmarkCheckStatement: the checker's cost on a cookbook-sized query.
func BenchmarkCheckStatement(b *testing.B) {
	p := testPolicy()
	q := strings.Repeat("SELECT vehicle_id, count() AS days, round(avg(score), 1) AS avg_score -- comment\n"+
		"FROM daily_scores FINAL WHERE date >= {from:Date} AND date <= {to:Date} AND empty(flags) ", 4) +
		"GROUP BY vehicle_id HAVING days >= {min_days:UInt32} ORDER BY avg_score DESC LIMIT 10 SETTINGS max_threads = 2"
	b.SetBytes(int64(len(q)))
	for i := 0; i < b.N; i++ {
		if err := p.checkStatement(analyst, q, -1); err != nil {
			b.Fatal(err)
		}
	}
}
