package sink

import (
	"slices"
	"testing"
)

func TestPlainType(t *testing.T) {
	for in, want := range map[string]string{
		"String":                              "String",
		"LowCardinality(String)":              "String",
		"Array(LowCardinality(String))":       "Array(String)",
		"LowCardinality(Nullable(String))":    "Nullable(String)",
		"Map(LowCardinality(String), UInt64)": "Map(String, UInt64)",
		"Tuple(LowCardinality(String), LowCardinality(FixedString(2)))": "Tuple(String, FixedString(2))",
		"DateTime64(3, 'UTC')":  "DateTime64(3, 'UTC')",
		"LowCardinality(String": "LowCardinality(String", // unbalanced: left alone
	} {
		if got := plainType(in); got != want {
			t.Errorf("plainType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseInsert(t *testing.T) {
	for _, insert := range []string{telemetryInsert, scoresInsert, ledgerInsert, redemptionsInsert} {
		table, cols, err := parseInsert(insert)
		if err != nil || table == "" || len(cols) < 10 || slices.Contains(cols, "") {
			t.Errorf("%.30q: %q %q %v", insert, table, cols, err)
		}
		if cols[len(cols)-1] != "src_offset" {
			t.Errorf("%s: last column %q", table, cols[len(cols)-1])
		}
	}
	if _, cols, _ := parseInsert(telemetryInsert); len(cols) != len((&telemetryRows{}).columns()) {
		t.Errorf("telemetry: %d columns in the insert, %d in telemetryRows", len(cols), len((&telemetryRows{}).columns()))
	}
	for _, bad := range []string{"SELECT 1", "INSERT INTO t VALUES (1)x", "INSERT INTO t"} {
		if _, _, err := parseInsert(bad); err == nil {
			t.Errorf("parseInsert(%q) accepted", bad)
		}
	}
}
