package stack

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
)

// TestEndToEndRevisionInClickHouse: a box offline from 18:00 on the first
// day until 05:00 on the second (past the 2h grace, within the 7-day
// lateness) uploads its evening after its day closed. Through the whole
// stack (gateway over HTTP, ingest, scoring, ledger, the sink into the
// real ClickHouse, the owner API), scoring re-scores the closed day into
// revision 1: daily_scores holds revision 0 and the revision (after a
// merge too), the ledger's rescore entry is in ledger_entries, and the
// owner's /reports shows the latest revision, its points as ClickHouse's
// latest row, late_added and the reason.
func TestEndToEndRevisionInClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	sim := twoDays(t)
	end1 := sim.Start().AddDate(0, 0, 1)
	from, to := end1.Add(-6*time.Hour), end1.Add(5*time.Hour)
	// The offline box: the first vehicle that drives in the span.
	vi := -1
	for d := range sim.Deliveries(fleet.Outages{}, sim.End()) {
		for _, ev := range d.Events {
			if tm := time.UnixMilli(ev.TimeMs); vi < 0 && !tm.Before(from) && tm.Before(end1.Add(-time.Hour)) {
				for i, v := range sim.Vehicles() {
					if v.VehicleID == ev.VehicleID {
						vi = i
					}
				}
			}
		}
	}
	if vi < 0 {
		t.Fatal("no vehicle drives in the offline span")
	}
	vin := sim.Vehicles()[vi].VehicleID
	outages := fleet.Outages{Offline: []fleet.Offline{{Vehicle: vi, Span: fleet.Span{From: from, To: to}}}}

	ch := chtest.Start(t)
	st := startStack(t, ctx, t.TempDir(), ch.WriterDSN(), ch.AnalystDSN())
	defer st.Close()
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	rep, err := st.SendDeliveries(ctx, sim, outages, 0, loadtest.SenderConfig{}, nil)
	if err != nil || rep.Failed > 0 || rep.Rejected > 0 {
		t.Fatalf("sending: %v (%s)", err, rep)
	}
	settle(t, ctx, st, sim)

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: ch.Analyst.Name, Password: ch.Analyst.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type row struct {
		date   time.Time
		rev    uint32
		points int64
		late   uint64
		rules  string
	}
	revisions := func() []row {
		rows, err := conn.Query(ctx, `SELECT date, revision, points, late_added, config_version FROM daily_scores
			WHERE vehicle_id = ? ORDER BY date, revision, src_offset`, vin)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.date, &r.rev, &r.points, &r.late, &r.rules); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The sink lands the revision after the ledger settled it: wait for it
	// (no time limit asserted: the test's own timeout is the bound).
	revised := func(rows []row) bool {
		for _, r := range rows {
			if r.rev > 0 {
				return true
			}
		}
		return false
	}
	for !revised(revisions()) {
		time.Sleep(100 * time.Millisecond)
	}
	writer, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: ch.Writer.Name, Password: ch.Writer.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if err := writer.Exec(ctx, "OPTIMIZE TABLE daily_scores FINAL"); err != nil {
		t.Fatal(err)
	}
	got := revisions()
	var day time.Time
	var latest row
	for i, r := range got {
		if r.rev > 0 {
			day, latest = r.date, r
			if i == 0 || !got[i-1].date.Equal(r.date) || got[i-1].rev != r.rev-1 {
				t.Fatalf("revision %d of %s without revision 0 before it: %+v", r.rev, r.date.Format(time.DateOnly), got)
			}
		}
	}
	kept := 0
	for _, r := range got {
		if r.date.Equal(day) {
			kept++
		}
	}
	if kept < 2 || latest.late == 0 {
		t.Fatalf("rows of %s %s: %+v, want revision 0 and the re-score (late_added > 0)", vin, day.Format(time.DateOnly), got)
	}
	for _, r := range got {
		t.Logf("daily_scores %s %s: revision %d, %d points, late_added %d", vin, r.date.Format(time.DateOnly), r.rev, r.points, r.late)
	}

	// The ledger booked the rescore; the sink landed it.
	// Waited for like the score. Its id names the vehicle by pseudonym
	// (docs/ledger.md): it is found by its reason, which names the day's
	// late events, date, points and revision.
	like := fmt.Sprintf("late data: %d events of %s arrived after the day closed; re-scored to %d points (%%), revision %d, rules %s",
		latest.late, day.Format(time.DateOnly), latest.points, latest.rev, latest.rules)
	for {
		var rescores uint64
		var id string
		if err := conn.QueryRow(ctx, "SELECT count(), any(id) FROM ledger_entries WHERE kind = 'rescore' AND reason LIKE ?", like).Scan(&rescores, &id); err != nil {
			t.Fatal(err)
		}
		if rescores > 1 {
			t.Fatalf("rescore entries like %q: %d rows", like, rescores)
		}
		if rescores == 1 {
			t.Logf("ledger_entries: rescore %s", id)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The owner API: the latest revision with its reason.
	var reports struct {
		Reports []struct {
			Date           string `json:"date"`
			Points         int64  `json:"points"`
			Revision       uint32 `json:"revision"`
			LateAdded      uint64 `json:"late_added"`
			RevisionReason string `json:"revision_reason"`
		} `json:"reports"`
	}
	d := day.Format(time.DateOnly)
	getJSON(t, "http://"+st.HTTPAddr()+"/v1/vehicles/"+vin+"/reports?from="+d+"&to="+d, st.OperatorToken, http.StatusOK, &reports)
	if len(reports.Reports) != 1 {
		t.Fatalf("reports %+v", reports)
	}
	r := reports.Reports[0]
	wantReason := fmt.Sprintf("re-scored after the day closed: revision %d, %d points, rules %s; %d events arrived late",
		latest.rev, latest.points, latest.rules, latest.late)
	if r.Revision != latest.rev || r.Points != latest.points || r.LateAdded != latest.late || r.RevisionReason != wantReason {
		t.Fatalf("owner report %+v, want revision %d, %d points, late_added %d, reason %q...", r, latest.rev, latest.points, latest.late, wantReason)
	}
	t.Logf("owner report: %+v", r)
}
