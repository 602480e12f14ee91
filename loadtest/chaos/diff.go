package chaos

import (
	"fmt"
	"strings"
)

// maxPerKind caps the differences listed per kind; the rest are counted.
const maxPerKind = 15

// Diff lists every difference between an uninterrupted run (want) and an
// interrupted one (got), each naming what differs: the vehicle-day, the
// account, the ledger leaf, the table, the summary line. It also lists
// what is wrong in got alone: a vehicle-day scored twice, a ClickHouse
// table whose rows are not unique or do not match the committed topic, a
// book that does not verify. No difference: nil.
func Diff(want, got *Snapshot) []string {
	var d differ
	// The summary (a topology of separate processes prints none).
	if got.Summary == nil {
		want = &Snapshot{Scores: want.Scores, ScoreCopies: want.ScoreCopies, Balances: want.Balances, TreeSize: want.TreeSize,
			Root: want.Root, Blocks: want.Blocks, Entries: want.Entries, Topics: want.Topics, Tables: want.Tables, TelemetryDay: want.TelemetryDay}
	}
	wantLines, gotLines := counts(want.Summary), counts(got.Summary)
	for _, l := range want.Summary {
		if gotLines[l] < wantLines[l] {
			d.add("summary", "summary line %q missing (uninterrupted run printed it)", l)
			gotLines[l]++
		}
	}
	wantLines = counts(want.Summary)
	for _, l := range got.Summary {
		if wantLines[l] == 0 {
			d.add("summary", "summary line %q not in the uninterrupted run's summary", l)
		} else {
			wantLines[l]--
		}
	}

	// Scores, per vehicle-day.
	for _, k := range keys(want.Scores) {
		w := want.Scores[k]
		g, ok := got.Scores[k]
		switch {
		case !ok:
			d.add("scores", "vehicle-day %s: score missing (want %d points)", k, w.Points)
		case g != w:
			d.add("scores", "vehicle-day %s: score differs: %s", k, fieldDiff(w, g))
		}
	}
	for _, k := range keys(got.Scores) {
		if _, ok := want.Scores[k]; !ok {
			d.add("scores", "vehicle-day %s: scored (%d points) but not in the uninterrupted run", k, got.Scores[k].Points)
		}
	}
	for _, k := range keys(got.ScoreCopies) {
		if n := got.ScoreCopies[k]; n != 1 {
			d.add("scores", "vehicle-day %s: %d committed scores in minecart.scores, want exactly 1", k, n)
		}
	}

	// Balances, per account.
	for _, k := range keys(want.Balances) {
		w := want.Balances[k]
		g, ok := got.Balances[k]
		switch {
		case !ok:
			d.add("balances", "account %s: missing (want balance %d)", k, w.Balance)
		case g != w:
			d.add("balances", "account %s: %s", k, fieldDiff(w, g))
		}
	}
	for _, k := range keys(got.Balances) {
		if _, ok := want.Balances[k]; !ok {
			d.add("balances", "account %s: balance %d, not in the uninterrupted run", k, got.Balances[k].Balance)
		}
	}

	// The book.
	if got.LedgerError != "" {
		d.add("ledger", "minecart ledger verify failed: %s", got.LedgerError)
	}
	if want.Root != got.Root || want.TreeSize != got.TreeSize {
		d.add("ledger", "head differs: tree size %d root %s, want tree size %d root %s", got.TreeSize, got.Root, want.TreeSize, want.Root)
	}
	for i := range max(len(want.Entries), len(got.Entries)) {
		switch {
		case i >= len(got.Entries):
			d.add("ledger", "leaf %d missing: want %s %s %+d", i, want.Entries[i].Kind, want.Entries[i].ID, want.Entries[i].Delta)
		case i >= len(want.Entries):
			d.add("ledger", "leaf %d extra: %s %s %+d", i, got.Entries[i].Kind, got.Entries[i].ID, got.Entries[i].Delta)
		case want.Entries[i] != got.Entries[i]:
			d.add("ledger", "leaf %d: %s %s %+d, want %s %s %+d", i, got.Entries[i].Kind, got.Entries[i].ID, got.Entries[i].Delta,
				want.Entries[i].Kind, want.Entries[i].ID, want.Entries[i].Delta)
		}
	}
	seen := map[string]int{}
	for i, e := range got.Entries {
		if j, ok := seen[e.ID]; ok {
			d.add("ledger", "entry %s appended twice: leaves %d and %d", e.ID, j, i)
		}
		seen[e.ID] = i
	}

	// Topics.
	for _, t := range keys(want.Topics) {
		if want.Topics[t] != got.Topics[t] {
			d.add("topics", "topic %s: %d committed records, want %d", t, got.Topics[t], want.Topics[t])
		}
	}

	// The ClickHouse firehose: unique rows, equal to the committed topic
	// and to the uninterrupted run.
	for _, t := range keys(tableIdentity) {
		w, g := want.Tables[t], got.Tables[t]
		if g.Count != g.Unique {
			d.add("clickhouse", "table %s: count() %d but uniqExact(%s) %d: %d rows doubled", t, g.Count, tableIdentity[t], g.Unique, g.Count-g.Unique)
		}
		if g != w {
			d.add("clickhouse", "table %s: count() %d uniqExact %d, want %d and %d (uninterrupted run)", t, g.Count, g.Unique, w.Count, w.Unique)
		}
	}
	if clean := got.Topics["minecart.telemetry.clean"]; got.Tables["telemetry"].Count != uint64(clean) {
		d.add("clickhouse", "table telemetry: %d rows, but minecart.telemetry.clean holds %d committed events", got.Tables["telemetry"].Count, clean)
	}
	if n := int64(len(got.Scores)); got.Tables["daily_scores"].Unique != uint64(n) {
		d.add("clickhouse", "table daily_scores: %d vehicle-days, but minecart.scores holds %d", got.Tables["daily_scores"].Unique, n)
	}
	if got.Tables["ledger_entries"].Unique != got.TreeSize {
		d.add("clickhouse", "table ledger_entries: %d leaves, but the book has %d", got.Tables["ledger_entries"].Unique, got.TreeSize)
	}
	for _, k := range keys(want.TelemetryDay) {
		if w, g := want.TelemetryDay[k], got.TelemetryDay[k]; g != w {
			d.add("clickhouse", "telemetry of vehicle-day %s: %d rows (%d unique events), want %d (%d)", k, g.Count, g.Unique, w.Count, w.Unique)
		}
	}
	for _, k := range keys(got.TelemetryDay) {
		if _, ok := want.TelemetryDay[k]; !ok {
			d.add("clickhouse", "telemetry of vehicle-day %s: %d rows, none in the uninterrupted run", k, got.TelemetryDay[k].Count)
		}
	}
	return d.lines()
}

type differ struct {
	out   []string
	count map[string]int
}

func (d *differ) add(kind, format string, args ...any) {
	if d.count == nil {
		d.count = map[string]int{}
	}
	d.count[kind]++
	if d.count[kind] <= maxPerKind {
		d.out = append(d.out, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (d *differ) lines() []string {
	for _, k := range keys(d.count) {
		if n := d.count[k]; n > maxPerKind {
			d.out = append(d.out, fmt.Sprintf("%s: ... and %d more differences", k, n-maxPerKind))
		}
	}
	return d.out
}

func counts(lines []string) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l]++
	}
	return m
}

// fieldDiff names the fields of two structs of one type that differ.
func fieldDiff[T any](want, got T) string {
	w := strings.Fields(strings.Trim(fmt.Sprintf("%+v", want), "{}"))
	g := strings.Fields(strings.Trim(fmt.Sprintf("%+v", got), "{}"))
	var parts []string
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			name, gv, _ := strings.Cut(g[i], ":")
			_, wv, _ := strings.Cut(w[i], ":")
			parts = append(parts, fmt.Sprintf("%s %s, want %s", name, gv, wv))
		}
	}
	if len(parts) == 0 || len(w) != len(g) {
		return fmt.Sprintf("%+v, want %+v", got, want)
	}
	return strings.Join(parts, "; ")
}

// Report formats the differences for a test failure.
func Report(diffs []string) string {
	if len(diffs) == 0 {
		return "no difference"
	}
	return fmt.Sprintf("%d difference(s) from the uninterrupted run:\n  %s", len(diffs), strings.Join(diffs, "\n  "))
}
