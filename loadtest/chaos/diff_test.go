package chaos

import (
	"strings"
	"testing"
)

func sample() *Snapshot {
	return &Snapshot{
		Summary:     []string{"daily scores     2 (0 with fraud flags)", "root             ab"},
		Scores:      map[string]Score{"V1/2026-11-01": {Score: 90, Points: 100, Events: 10}, "V2/2026-11-01": {Score: 80, Points: 50, Events: 5}},
		ScoreCopies: map[string]int{"V1/2026-11-01": 1, "V2/2026-11-01": 1},
		Balances:    map[string]Account{"owner-1": {Balance: 150}},
		TreeSize:    2, Root: "ab",
		Entries: []Entry{{"credit", "V1/2026-11-01", 100}, {"credit", "V2/2026-11-01", 50}},
		Topics:  map[string]int64{"minecart.telemetry.clean": 15, "minecart.scores": 2},
		Tables: map[string]Table{"telemetry": {15, 15}, "daily_scores": {2, 2}, "ledger_entries": {2, 2},
			"redemptions": {0, 0}},
		TelemetryDay: map[string]Table{"V1/2026-11-01": {10, 10}, "V2/2026-11-01": {5, 5}},
	}
}

func TestDiffEqual(t *testing.T) {
	if d := Diff(sample(), sample()); len(d) != 0 {
		t.Fatalf("equal snapshots: %s", Report(d))
	}
}

// TestDiffNamesWhatDiffers: each kind of damage is reported with the
// vehicle-day, account, leaf or table it touches.
func TestDiffNamesWhatDiffers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(s *Snapshot)
		want   []string
	}{
		{"score lost", func(s *Snapshot) { delete(s.Scores, "V2/2026-11-01"); delete(s.ScoreCopies, "V2/2026-11-01") },
			[]string{"vehicle-day V2/2026-11-01: score missing"}},
		{"score changed", func(s *Snapshot) { s.Scores["V1/2026-11-01"] = Score{Score: 90, Points: 99, Events: 10} },
			[]string{"vehicle-day V1/2026-11-01: score differs: Points 99, want 100"}},
		{"score doubled", func(s *Snapshot) { s.ScoreCopies["V1/2026-11-01"] = 2 },
			[]string{"vehicle-day V1/2026-11-01: 2 committed scores"}},
		{"balance", func(s *Snapshot) { s.Balances["owner-1"] = Account{Balance: 250} },
			[]string{"account owner-1: Balance 250, want 150"}},
		{"account extra", func(s *Snapshot) { s.Balances["owner-2"] = Account{Balance: 5} },
			[]string{"account owner-2: balance 5, not in the uninterrupted run"}},
		{"credit twice", func(s *Snapshot) {
			s.Entries = append(s.Entries, Entry{"credit", "V1/2026-11-01", 100})
			s.TreeSize = 3
		}, []string{"leaf 2 extra: credit V1/2026-11-01 +100", "entry V1/2026-11-01 appended twice: leaves 0 and 2", "head differs"}},
		{"root", func(s *Snapshot) { s.Root = "cd" }, []string{"head differs: tree size 2 root cd, want tree size 2 root ab"}},
		{"verify", func(s *Snapshot) { s.LedgerError = "bad signature" }, []string{"ledger verify failed: bad signature"}},
		{"rows doubled", func(s *Snapshot) {
			s.Tables["telemetry"] = Table{17, 15}
			s.TelemetryDay["V2/2026-11-01"] = Table{7, 5}
		}, []string{"table telemetry: count() 17 but uniqExact(event_id) 15: 2 rows doubled",
			"telemetry of vehicle-day V2/2026-11-01: 7 rows (5 unique events), want 5 (5)",
			"table telemetry: 17 rows, but minecart.telemetry.clean holds 15"}},
		{"rows lost", func(s *Snapshot) { s.Tables["ledger_entries"] = Table{1, 1} },
			[]string{"table ledger_entries: 1 leaves, but the book has 2"}},
		{"summary", func(s *Snapshot) { s.Summary[0] = "daily scores     1 (0 with fraud flags)" },
			[]string{`summary line "daily scores     2 (0 with fraud flags)" missing`, `summary line "daily scores     1 (0 with fraud flags)" not in`}},
		{"topic", func(s *Snapshot) { s.Topics["minecart.telemetry.clean"] = 16 },
			[]string{"topic minecart.telemetry.clean: 16 committed records, want 15"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sample()
			tc.damage(got)
			d := Diff(sample(), got)
			rep := Report(d)
			for _, w := range tc.want {
				if !strings.Contains(rep, w) {
					t.Errorf("report lacks %q:\n%s", w, rep)
				}
			}
		})
	}
}

func TestDiffCapsEachKind(t *testing.T) {
	got := sample()
	want := sample()
	for i := range 40 {
		want.Balances[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = Account{Balance: int64(i)}
	}
	rep := Report(Diff(want, got))
	if !strings.Contains(rep, "balances: ... and 25 more differences") {
		t.Fatalf("want the 40 missing accounts capped at %d:\n%s", maxPerKind, rep)
	}
}

func TestSummaryLines(t *testing.T) {
	out := []string{"[ 1s] sent chunk 0", "", "=== minecart summary ===", "events in        12 accepted by the gateway, 0 refused",
		"ledger           height 3, 30 entries", "root             ab", "", "analysts: curl x",
		"cosigned         tree size 30 by w1, w3 (quorum 2 of 3 witnesses)", "  minecart/ledger", "  30", "  q80=", "", "  — minecart/ledger x", "  — w1 y",
		"owner login (demo owner owner-00000, password in /tmp/x/demo-owner.password):", "  curl -c /tmp/x/c http://127.0.0.1:1/v1/login",
		"operator: curl -H x", "serving until Ctrl-C: ..."}
	got := strings.Join(summaryLines(out), "|")
	if want := "ledger           30 entries|root             ab"; got != want {
		t.Fatalf("summaryLines = %q, want %q", got, want)
	}
}

func TestMetricsSumAndBy(t *testing.T) {
	m := Metrics{
		"minecart_pipeline_transactions_total{result=committed,stage=ingest}": 3,
		"minecart_pipeline_transactions_total{result=aborted,stage=ingest}":   1,
		"minecart_pipeline_transactions_total{result=committed,stage=ledger}": 2,
	}
	if got := m.Sum("minecart_pipeline_transactions_total", "result=committed"); got != 5 {
		t.Errorf("committed = %v, want 5", got)
	}
	if got := m.By("minecart_pipeline_transactions_total", "stage"); got["ingest"] != 4 || got["ledger"] != 2 {
		t.Errorf("by stage = %v", got)
	}
}
