package chserver

import (
	"strings"
	"testing"
)

func TestParseInsert(t *testing.T) {
	for _, tc := range []struct {
		sql                              string
		ok                               bool
		target, settings, format, inline string
	}{
		{"INSERT INTO t FORMAT Native", true, "t", "", "Native", ""},
		{"insert into db.t (a, b) format CSV\n1,2\n", true, "db.t (a, b)", "", "CSV", "1,2\n"},
		{"INSERT INTO t SETTINGS async_insert=0 FORMAT JSONEachRow {\"a\":1}", true, "t", "async_insert=0", "JSONEachRow", "{\"a\":1}"},
		{"INSERT INTO t VALUES (1), (2)", true, "t", "", "Values", " (1), (2)"},
		{"INSERT INTO t SELECT * FROM s", false, "", "", "", ""},
		{"INSERT INTO t FROM INFILE '/x' FORMAT Native", false, "", "", "", ""},
		{"INSERT INTO t SELECT 1 FORMAT Native", false, "", "", "", ""},
	} {
		h, ok := parseInsert(tc.sql)
		if ok != tc.ok || ok && (h.target != tc.target || h.settings != tc.settings || h.format != tc.format || h.inline != tc.inline) {
			t.Errorf("%q: %v %+v", tc.sql, ok, h)
		}
	}
	h, _ := parseInsert("INSERT INTO t SETTINGS x=1 FORMAT CSV")
	if got := h.infileSQL("/tmp/a'b"); got != `INSERT INTO t FROM INFILE '/tmp/a\'b' SETTINGS x=1 FORMAT CSV` {
		t.Errorf("infile %q", got)
	}
}

func TestStatementKinds(t *testing.T) {
	for sql, want := range map[string]stmtKind{
		"  -- c\n/* x */ select 1": stmtRead,
		"WITH 1 AS x SELECT x":     stmtRead,
		"insert into t values (1)": stmtInsert,
		"CREATE TABLE x (a UInt8)": stmtWrite,
		"SELEC 1":                  stmtOther,
	} {
		if got := kindOf(sql); got != want {
			t.Errorf("%q: %v, want %v", sql, got, want)
		}
	}
	if f := explicitFormat("SELECT 1 FORMAT JSONEachRow;"); f != "JSONEachRow" {
		t.Errorf("format %q", f)
	}
}

func TestMultiStatement(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                                 false,
		"SELECT 1;":                                false,
		"SELECT 1; -- done\n":                      false,
		"SELECT 1; /* x */ ;":                      false,
		"SELECT 1; DROP TABLE t":                   true,
		"SELECT 'a;b', \"c;d\", `e;f`":             false,
		"SELECT 'it''s; ok'":                       false,
		"SELECT 'esc\\'; DROP TABLE t'":            false,
		"SELECT 1 -- ; DROP\n":                     false,
		"SELECT 1 /* ; DROP */":                    false,
		"INSERT INTO t; DROP TABLE x FROM INFILE ": true,
	} {
		if got := multiStatement(sql); got != want {
			t.Errorf("%q: %v, want %v", sql, got, want)
		}
	}
}

// FuzzSQLHelpers: parsing a request's SQL never panics; a parsed INSERT
// keeps its inline data as a suffix of the input and rebuilds to an INSERT
// ... FROM INFILE ... FORMAT statement.
func FuzzSQLHelpers(f *testing.F) {
	for _, s := range []string{"INSERT INTO t FORMAT CSV\n1,2", "INSERT INTO t VALUES (1)", "SELECT 1; SELECT 2",
		"SELECT 'a;b' FORMAT JSON", "/* c */ insert into t settings a=1 format Native", "-- x\nSELECT `a`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		multiStatement(sql)
		explicitFormat(sql)
		kindOf(sql)
		h, ok := parseInsert(sql)
		if !ok {
			return
		}
		if !strings.HasSuffix(sql, h.inline) {
			t.Fatalf("inline %q is not a suffix of %q", h.inline, sql)
		}
		q := h.infileSQL("/tmp/x")
		if !strings.HasPrefix(q, "INSERT INTO ") || !strings.Contains(q, " FROM INFILE '/tmp/x'") || !strings.HasSuffix(q, " FORMAT "+h.format) {
			t.Fatalf("infile SQL %q", q)
		}
	})
}
