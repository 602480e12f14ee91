package chserver

import "testing"

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
