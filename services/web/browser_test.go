package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/stack"
)

// chromium finds Debian's chromium; without it the browser tests skip,
// unless MINECART_REQUIRE_CHROMIUM is set (make test sets it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("MINECART_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium not found and MINECART_REQUIRE_CHROMIUM is set: run infra/setup.sh (apt-get install chromium)")
	}
	t.Skip("chromium not found (apt-get install chromium, or make setup): browser tests skipped")
	return ""
}

// browser starts a headless chromium (no sandbox: tests run as root).
func browser(t *testing.T, ctx context.Context) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Headless, chromedp.WindowSize(1000, 900))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	bctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// owner is an HTTP client logged in as the demo owner.
type client struct {
	t    *testing.T
	base string
	tok  string
}

func (c client) get(path string, v any) int {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

var errStop = errors.New("stop sending")

// fcp is the page's first contentful paint in ms since navigation (-1: none yet).
const fcp = `(performance.getEntriesByName('first-contentful-paint')[0]||{}).startTime||-1`

// TestBrowser drives the three faces in Debian's chromium against the
// whole pipeline (embedded broker, ClickHouse, every stage) fed by the
// simulated fleet (seed 1: both of the demo owner's vehicles drive
// aggressively on the first day): the demo owner logs in, opens a day with harsh events
// (map, track, markers), opens a receipt (verified in the browser), sees a
// proof tampered with in transit fail loudly, redeems and sees the
// balance drop; the explorer shows /ledger/checkpoint's root, verified;
// the console's counters move while the simulator sends. Every page
// passes axe-core with no serious or critical violation. With
// MINECART_SCREENSHOTS=dir each page is saved there as a JPEG.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end in a browser")
	}
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ch := chtest.Start(t)
	sim, err := fleet.New(fleet.Config{Seed: 1, Vehicles: 8, Days: 2, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := stack.Start(ctx, stack.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClickHouseDSN: ch.WriterDSN(), ClickHouseReadDSN: ch.AnalystDSN(), SessionTimeout: time.Second,
		Witnesses: make([]stack.WitnessConfig, 3), // as minecart run: w1..w3, quorum 2 of 3
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	demo := stack.OwnerOf(0)
	pw, err := st.DemoOwner(ctx, demo)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + st.HTTPAddr()

	// Send the first day and a little more (its close), then stop: the
	// rest is sent while the console watches.
	firstEnd := sim.Start().Add(24*time.Hour + 2*time.Hour + 30*time.Minute)
	cut := 0
	for d := range sim.Deliveries(fleet.Outages{}, sim.End().Add(2*time.Hour)) {
		if d.At.After(firstEnd) {
			break
		}
		cut++
	}
	_, err = st.SendFleet(ctx, sim, 0, loadtest.SenderConfig{Concurrency: 8}, func(k int, _ loadtest.Report) error {
		if k+1 >= cut {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("sending day 1: %v", err)
	}

	// Log in over HTTP too, to pick a day with harsh events and wait
	// for its points to be proven.
	var sess struct{ Token string }
	resp, err := http.Post(base+"/v1/login", "application/json", strings.NewReader(fmt.Sprintf(`{"owner":%q,"password":%q}`, demo, pw)))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	c := client{t: t, base: base, tok: sess.Token}
	day := sim.Start().Format(time.DateOnly)
	var vin string
	var leaf uint64
	for deadline := time.Now().Add(6 * time.Minute); ; {
		vin, leaf = pick(c, sim, day)
		if vin != "" {
			break
		}
		if time.Now().After(deadline) {
			var mine, reps, pts any
			c.get("/v1/me/vehicles", &mine)
			c.get("/v1/vehicles/"+sim.Vehicles()[0].VehicleID+"/reports?from="+day+"&to="+day, &reps)
			c.get("/v1/vehicles/"+sim.Vehicles()[0].VehicleID+"/points", &pts)
			t.Fatalf("no vehicle of %s has a proven credit and harsh events on %s: vehicles %v reports %v points %.2000v", demo, day, mine, reps, pts)
		}
		time.Sleep(time.Second)
	}
	t.Logf("demo owner %s: vehicle %s, %s, receipt leaf %d", demo, vin, day, leaf)

	// Aggressive drivers earn little: a goodwill adjustment pays for the coffee.
	adj, err := st.Serde.Marshal(&avro.DebitRequest{RequestID: "browser-goodwill", Kind: avro.RequestKindAdjustment, Account: demo,
		VehicleID: vin, Amount: 500, Reason: "goodwill", RequestedAt: sim.Start().Add(30 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Producer.ProduceSync(ctx, pipelines.TopicLedgerRequests, []byte(demo), adj); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var bal struct{ Available int64 }
		if c.get("/v1/accounts/"+demo+"/balance", &bal) == 200 && bal.Available >= 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the goodwill adjustment did not reach %s's balance", demo)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A partner's campaign in the book: its key (an operator's act) and
	// its signed submit, as the campaign API would produce them. It pays
	// from 2027 only, so the balances below stay the credits'.
	cpub, cpriv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{5}, 64)))
	cdef := campaign.Definition{Partner: "acme", Name: "safe-winter", Title: "safe winter", Rule: `score >= 80.0 ? points / 2 : 0`,
		Start: "2027-01-01", End: "2027-01-31", Budget: 5000, Cap: 50}
	for i, e := range []ledger.Entry{campaign.RegisterKey("acme", cpub, sim.Start().Add(30*time.Hour).UnixMilli()),
		campaign.Submit(cdef, cpriv, sim.Start().Add(30*time.Hour).UnixMilli())} {
		v, err := st.Serde.Marshal(campaign.Request(&e))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Producer.ProduceSync(ctx, pipelines.TopicLedgerRequests, []byte(e.Campaign), v); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if _, ok := st.Ledger.Campaign(cdef.ID()); (i == 0 && st.Ledger.PartnerKey("acme") != nil) || ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("campaign entry %s not in the book", e.ID)
			}
		}
	}

	b := browser(t, ctx)
	shots := os.Getenv("MINECART_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		png, err := chromedp.Run(b, chromedp.FullScreenshot(80))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(shots, name+".jpg"), png, 0o644); err != nil {
			t.Error(err)
		}
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(b, 2*time.Minute)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			var html string
			_ = chromedp.Do(b, into(&html, chromedp.OuterHTML(chromedp.CSS("main"))))
			t.Fatalf("%s: %v\npage: %.3000s", what, err, html)
		}
	}
	axe := axeChecker(t, b)

	// Log in; first paint of the owner page.
	var paint float64
	run("login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("#owner-id")),
		evalTo(fcp, &paint))
	t.Logf("first contentful paint of /: %.0f ms", paint)
	axe("login")
	shot("owner-login")
	// By keyboard alone: the page focuses the owner id; Tab to the
	// password, Enter submits.
	var focused string
	run("log in", evalTo(`document.activeElement.id`, &focused), chromedp.KeyEvent(demo), chromedp.KeyEvent("\t"),
		chromedp.KeyEvent(pw), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(`article.vehicle`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet-map path.vehicle-pos`)))
	if focused != "owner-id" {
		t.Errorf("the login page focuses %q, want the owner id", focused)
	}
	// Usage: trips per day, week and month (services/owner /trips), the
	// same trips counted three ways.
	var tripsDay, tripsWeek, tripsMonth string
	tr := `article.vehicle[data-vin="` + vin + `"] table.trips-table tr[data-by=%s] td.trips`
	run("trips", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(tr, "day"))),
		into(&tripsDay, chromedp.Text(chromedp.CSS(fmt.Sprintf(tr, "day")))),
		into(&tripsWeek, chromedp.Text(chromedp.CSS(fmt.Sprintf(tr, "week")))),
		into(&tripsMonth, chromedp.Text(chromedp.CSS(fmt.Sprintf(tr, "month")))))
	if num(tripsDay) < 1 || tripsDay != tripsWeek || tripsDay != tripsMonth {
		t.Errorf("trips of %s: %q per day, %q per week, %q per month; want the same count, at least one", vin, tripsDay, tripsWeek, tripsMonth)
	}
	t.Logf("%s: %s trips", vin, tripsDay)
	axe("vehicles")
	shot("owner-vehicles")

	// A day: the map, the track and the harsh-event markers.
	var marks, listed, segments int
	run("a day", chromedp.Navigate(base+"/#/day/"+vin+"/"+day), chromedp.WaitVisible(chromedp.CSS(`#day-map path.track`)),
		chromedp.WaitVisible(chromedp.CSS(`#day-map path.mark`)),
		evalTo(`document.querySelectorAll('#day-map path.mark-harsh_brake, #day-map path.mark-harsh_accel, #day-map path.mark-harsh_corner').length`, &marks),
		evalTo(`document.querySelectorAll('#marks li[data-kind^=harsh]').length`, &listed),
		evalTo(`document.querySelectorAll('#day-map path.track').length`, &segments))
	if marks == 0 || marks != listed {
		t.Errorf("day %s of %s: %d harsh markers on the map, %d listed; want the same, at least one", day, vin, marks, listed)
	}
	if segments < 10 {
		t.Errorf("day %s of %s: %d track segments", day, vin, segments)
	}
	var explain string
	run("explanation", into(&explain, chromedp.Text(chromedp.ID("#explain"))))
	if !strings.Contains(explain, "harsh") || !strings.Contains(explain, "points") {
		t.Errorf("explanation %q: want the harsh events and the points", explain)
	}
	axe("day")
	shot("owner-day")

	// A receipt, verified in the browser.
	var v string
	run("points", chromedp.Navigate(base+"/#/points/"+vin), chromedp.WaitVisible(chromedp.CSS(`#history a.receipt-link`)))
	axe("points")
	shot("owner-points")
	receipt := fmt.Sprintf("/#/receipt/%s/%d", vin, leaf)
	run("receipt", chromedp.Navigate(base+receipt), chromedp.WaitVisible(chromedp.CSS(`#receipt-verdict [data-verdict]`)),
		attr(chromedp.CSS(`#receipt-verdict [data-verdict]`), "data-verdict", &v))
	var detail string
	run("receipt text", into(&detail, chromedp.Text(chromedp.ID("#receipt-verdict"))))
	if v != "verified" || !strings.Contains(detail, "valid Ed25519 signature") {
		t.Errorf("receipt of leaf %d: %q: %s", leaf, v, detail)
	}
	// The opening: the browser recomputed the pseudonym and the leaf names it.
	if !regexp.MustCompile(`credit names your vehicle ` + vin + ` as p1:[0-9a-f]{32} `).MatchString(detail) {
		t.Errorf("receipt: no checked opening of %s: %s", vin, detail)
	}
	// The witness quorum: each cosignature verified under /ledger/policy.
	if !regexp.MustCompile(`cosigned by w\d(, w\d)+ \(quorum 2 of 3\); each cosignature verified`).MatchString(detail) {
		t.Errorf("receipt: no verified witness quorum: %s", detail)
	}
	axe("receipt")
	shot("owner-receipt")

	// The same receipt through a proxy that flips one hash of the proof.
	proxy := tamperProxy(t, base)
	// (Cookies are per host, not port: the session rides along.)
	run("tampered receipt", chromedp.Navigate(proxy+receipt), chromedp.WaitVisible(chromedp.CSS(`#receipt-verdict [data-verdict]`)),
		attr(chromedp.CSS(`#receipt-verdict [data-verdict]`), "data-verdict", &v),
		into(&detail, chromedp.Text(chromedp.ID("#receipt-verdict"))))
	if v != "failed" || !strings.Contains(detail, "FAILED") {
		t.Errorf("tampered proof: %q: %s; want a loud failure", v, detail)
	}
	shot("owner-receipt-tampered")

	// A tampered opening (another key): the pseudonym does not re-make.
	opened := rewriteProxy(t, base, func(path string) bool { return strings.HasSuffix(path, "/points") }, func(b []byte) []byte {
		var p map[string]any
		if json.Unmarshal(b, &p) != nil {
			return b
		}
		if o, ok := p["opening"].(map[string]any); ok {
			k := []byte(o["key"].(string))
			k[0] = "10"[map[bool]int{true: 1, false: 0}[k[0] == '1']]
			o["key"] = string(k)
		}
		out, _ := json.Marshal(p)
		return out
	})
	run("tampered opening", chromedp.Navigate(opened+receipt), chromedp.WaitVisible(chromedp.CSS(`#receipt-verdict [data-verdict]`)),
		attr(chromedp.CSS(`#receipt-verdict [data-verdict]`), "data-verdict", &v),
		into(&detail, chromedp.Text(chromedp.ID("#receipt-verdict"))))
	if v != "failed" || !strings.Contains(detail, "the opening does not open") {
		t.Errorf("tampered opening: %q: %s; want a loud failure", v, detail)
	}

	// Cosignatures stripped by a proxy: the quorum (2 of 3) holds without
	// all but two of them and fails without one more.
	cos := cosignatures(t, base)
	t.Logf("/ledger/checkpoint carries %d cosignatures", cos)
	for _, tc := range []struct {
		strip int
		want  string
	}{{cos - 2, "verified"}, {cos - 1, "failed"}} {
		stripped := rewriteProxy(t, base, func(path string) bool { return path == "/ledger/checkpoint" }, func(b []byte) []byte {
			return []byte(stripCosignatures(string(b), tc.strip))
		})
		run(fmt.Sprintf("%d cosignatures stripped", tc.strip), chromedp.Navigate(stripped+receipt), chromedp.WaitVisible(chromedp.CSS(`#receipt-verdict [data-verdict]`)),
			attr(chromedp.CSS(`#receipt-verdict [data-verdict]`), "data-verdict", &v),
			into(&detail, chromedp.Text(chromedp.ID("#receipt-verdict"))))
		if v != tc.want || (v == "failed" && !strings.Contains(detail, "witness quorum NOT met")) || (v == "verified" && !strings.Contains(detail, "(quorum 2 of 3)")) {
			t.Errorf("%d of %d cosignatures stripped: %q, want %q: %s", tc.strip, cos, v, tc.want, detail)
		}
	}

	// Redeem a coffee: the available balance drops by its price.
	var before, after string
	run("redeem", chromedp.Navigate(base+"/#/redeem"), chromedp.WaitVisible(chromedp.CSS(`button.redeem[data-item=coffee]`)),
		into(&before, chromedp.Text(chromedp.ID("#redeem-balance"))))
	axe("redeem")
	shot("owner-redeem")
	run("confirm", chromedp.Click(chromedp.CSS(`button.redeem[data-item=coffee]`)), chromedp.WaitVisible(chromedp.ID("#confirm-redeem")),
		chromedp.Click(chromedp.ID("#confirm-redeem")), chromedp.WaitVisible(chromedp.ID("#redeem-status")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('redeem-balance').textContent !== %q`, before), chromedp.WithPollingTimeout(90*time.Second)),
		into(&after, chromedp.Text(chromedp.ID("#redeem-balance"))))
	if num(before)-num(after) != 50 {
		t.Errorf("available balance %s -> %s after a coffee (50 points)", before, after)
	}

	// The redemption's debit shows in the account's history (once the
	// sink landed it), and its receipt verifies. Since redemptions became
	// pending transfers to partner:<id> (settlement's holds), it is an
	// entry of kind transfer; a debit is accepted too.
	var debits int
	run("account history", chromedp.Navigate(base+"/#/points/"+vin), chromedp.WaitVisible(chromedp.ID("#account-history")))
	for deadline := time.Now().Add(90 * time.Second); ; {
		run("account debits", chromedp.WaitVisible(chromedp.ID("#account-history")),
			evalTo(`document.querySelectorAll('#account-history tr[data-kind=debit], #account-history tr[data-kind=transfer]').length`, &debits))
		if debits > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
		run("reload", chromedp.Reload())
	}
	if debits == 0 {
		t.Fatal("the redemption's debit never showed in the account's history")
	}
	run("debit receipt", chromedp.Click(chromedp.CSS(`#account-history tr:is([data-kind=debit], [data-kind=transfer]) a.receipt-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#receipt-verdict [data-verdict]`)),
		attr(chromedp.CSS(`#receipt-verdict [data-verdict]`), "data-verdict", &v))
	if v != "verified" {
		t.Errorf("the debit's receipt: %q", v)
	}
	shot("owner-account-receipt")

	// Transfer 10 points to the next owner: accepted, the available balance drops by 10.
	run("transfer", chromedp.Navigate(base+"/#/transfer"), chromedp.WaitVisible(chromedp.ID("#transfer-form")),
		into(&before, chromedp.Text(chromedp.ID("#transfer-balance"))))
	axe("transfer")
	var tstatus string
	run("confirm transfer", chromedp.SendKeys(chromedp.ID("#to-owner"), stack.OwnerOf(2)), chromedp.SendKeys(chromedp.ID("#amount"), "10"),
		chromedp.Click(chromedp.CSS(`#transfer-form button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("#confirm-transfer")),
		chromedp.Click(chromedp.ID("#confirm-transfer")), chromedp.WaitVisible(chromedp.ID("#transfer-status")),
		attr(chromedp.ID("#transfer-status"), "data-status", &tstatus),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('transfer-balance').textContent !== %q`, before), chromedp.WithPollingTimeout(90*time.Second)),
		into(&after, chromedp.Text(chromedp.ID("#transfer-balance"))))
	if (tstatus != "ACCEPTED" && tstatus != "COMMITTED") || num(before)-num(after) != 10 {
		t.Errorf("transfer of 10 points: %s, available %s -> %s", tstatus, before, after)
	}
	shot("owner-transfer")

	// The explorer: the checkpoint's root is /ledger/checkpoint's, and
	// verified; the published one's witness quorum too. (The head and the
	// published checkpoint differ while the witnesses cosign a new block:
	// look again until they agree.)
	var root, cpv, pubv, pubText string
	for try := 0; ; try++ {
		run("explorer", chromedp.Navigate(base+"/explorer"), chromedp.WaitVisible(chromedp.CSS(`#checkpoint-verdict [data-verdict]`)),
			chromedp.WaitVisible(chromedp.CSS(`#published-verdict [data-verdict]`)),
			evalTo(fcp, &paint),
			into(&root, chromedp.Text(chromedp.ID("#root"))),
			attr(chromedp.CSS(`#checkpoint-verdict [data-verdict]`), "data-verdict", &cpv),
			attr(chromedp.CSS(`#published-verdict [data-verdict]`), "data-verdict", &pubv),
			into(&pubText, chromedp.Text(chromedp.ID("#published-verdict"))))
		if root == checkpointRoot(t, base) || try == 30 {
			break
		}
		time.Sleep(time.Second)
	}
	if want := checkpointRoot(t, base); root != want || cpv != "verified" {
		t.Errorf("explorer root %s (%s), /ledger/checkpoint %s", root, cpv, want)
	}
	if pubv != "verified" || !regexp.MustCompile(`cosigned by w\d(, w\d)+ \(quorum 2 of 3\)`).MatchString(pubText) {
		t.Errorf("explorer: published checkpoint %q: %s", pubv, pubText)
	}
	t.Logf("first contentful paint of /explorer: %.0f ms", paint)
	axe("explorer")
	shot("explorer")
	run("explorer block", chromedp.Click(chromedp.CSS(`#blocks tbody a`)), chromedp.WaitVisible(chromedp.CSS(`#entries tbody a`)))
	shot("explorer-block")
	run("explorer entry", chromedp.Click(chromedp.CSS(`#entries tbody a`)), chromedp.WaitVisible(chromedp.ID("#verify")),
		chromedp.Click(chromedp.ID("#verify")), chromedp.WaitVisible(chromedp.CSS(`#leaf-verdict [data-verdict]`)),
		attr(chromedp.CSS(`#leaf-verdict [data-verdict]`), "data-verdict", &v),
		into(&detail, chromedp.Text(chromedp.ID("#leaf-verdict"))))
	// The redemption's debit grew the book since the receipt: the browser
	// checked the new checkpoint is consistent with the one it kept.
	if v != "verified" || !strings.Contains(detail, "consistent with the checkpoint this browser saw before") {
		t.Errorf("explorer entry: %q: %s", v, detail)
	}
	axe("explorer-entry")
	shot("explorer-entry")

	// The campaigns: the list shows the rule text from the canonical
	// definition; so does the submit entry's page.
	var campText, ruleText, action string
	run("explorer campaigns", chromedp.Navigate(base+"/explorer#/campaigns"),
		chromedp.WaitVisible(chromedp.CSS(`#campaigns li[data-campaign="acme/safe-winter"]`)),
		into(&campText, chromedp.Text(chromedp.CSS(`#campaigns li[data-campaign="acme/safe-winter"]`))))
	if !strings.Contains(campText, cdef.Rule) || !strings.Contains(campText, "2027-01-01 to 2027-01-31") || !strings.Contains(campText, "5,000 points") {
		t.Errorf("explorer campaigns: %q, want the rule %q, schedule and budget", campText, cdef.Rule)
	}
	axe("explorer-campaigns")
	// The campaigns list shows code.rule too: wait for what only the
	// entry's page has before reading.
	run("explorer campaign entry", chromedp.Click(chromedp.CSS(`#campaigns li[data-campaign="acme/safe-winter"] a`)),
		chromedp.WaitVisible(chromedp.ID("#campaign-action")), into(&ruleText, chromedp.Text(chromedp.CSS(`#view code.rule`))),
		into(&action, chromedp.Text(chromedp.ID("#campaign-action"))))
	if ruleText != cdef.Rule || action != "submit" {
		t.Errorf("explorer campaign entry: %s rule %q, want submit %q", action, ruleText, cdef.Rule)
	}
	axe("explorer-campaign-entry")
	shot("explorer-campaign-entry")

	// A record ingest cannot decode: the console samples it from the
	// dead-letter topic.
	if err := st.Producer.ProduceSync(ctx, pipelines.TopicTelemetryRaw, []byte("corrupt"), []byte("\xc3\x01not avro at all")); err != nil {
		t.Fatal(err)
	}

	// The console, while the simulator sends the rest.
	run("console", chromedp.Navigate(base+"/console"), chromedp.WaitVisible(chromedp.ID("#op-token")),
		chromedp.SendKeys(chromedp.ID("#op-token"), st.OperatorToken), chromedp.Click(chromedp.CSS(`#token-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#stages tr[data-stage=ingest] td.lag`)), evalTo(fcp, &paint))
	t.Logf("first contentful paint of /console: %.0f ms", paint)
	var in0 string
	run("console in", into(&in0, chromedp.Text(chromedp.CSS(`#stages tr[data-stage=ingest] td`))))
	sent := make(chan error, 1)
	go func() {
		_, err := st.SendFleet(ctx, sim, cut, loadtest.SenderConfig{Concurrency: 8}, nil)
		sent <- err
	}()
	var in1 string
	run("console moves", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#stages tr[data-stage=ingest] td').textContent !== %q`, in0),
		chromedp.WithPollingTimeout(90*time.Second)), into(&in1, chromedp.Text(chromedp.CSS(`#stages tr[data-stage=ingest] td`))))
	if num(in1) <= num(in0) {
		t.Errorf("console: ingest in %s -> %s while sending", in0, in1)
	}
	var lagSeen bool
	run("console lag", evalTo(`[...document.querySelectorAll('#lag-partitions tbody tr')].length > 0`, &lagSeen))
	if !lagSeen {
		t.Error("console: no lag per partition")
	}
	var cells int
	run("console cells", chromedp.WaitVisible(chromedp.CSS(`#fleet-map path.cell`)),
		evalTo(`document.querySelectorAll('#fleet-map path.cell').length`, &cells),
		chromedp.WaitVisible(chromedp.CSS(`#leaders li`)))
	t.Logf("console: ingest in %s -> %s, %d fleet cells", in0, in1, cells)
	// The dead letter's sample: where it came from and its payload.
	var dead string
	sample := `#dead-samples table.dead-reason[data-reason^="ingest/"] tr.dead-sample`
	run("console dead letters", chromedp.Poll[chromedp.Void](`document.querySelector('`+sample+`') !== null`, chromedp.WithPollingTimeout(90*time.Second)),
		into(&dead, chromedp.Text(chromedp.CSS(`#dead-samples table.dead-reason[data-reason^="ingest/"]`))))
	if !strings.Contains(dead, pipelines.TopicTelemetryRaw+"/") || !strings.Contains(dead, "c3016e6f74206176726f") {
		t.Errorf("console dead letters: %q, want the raw topic and the payload's bytes", dead)
	}
	axe("console")
	shot("console")

	// A day's evidence as the fraud queue opens it: track and marks on the
	// map, counters, the rule that fired and the owner app's words for the
	// score and flags. The simulated fleet has no fraudulent vehicle, so
	// the picked day gets a flagged version in ClickHouse (as a rescore
	// would write it, under its own source topic so the sink's offsets
	// stay untouched).
	flagged := `INSERT INTO daily_scores SELECT * REPLACE (['teleport'] AS flags, ['position jumped 41.3 km in 2 s'] AS flag_reasons,
		'web.test.fixture' AS src_topic, src_offset + 1000000000000 AS src_offset)
		FROM daily_scores WHERE date = '` + day + `' AND vehicle_id = '` + vin + `' ORDER BY src_offset DESC LIMIT 1`
	if resp, err := http.Post(ch.URL()+"/?database=default", "text/plain", strings.NewReader(flagged)); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); resp.Body.Close() != nil || resp.StatusCode != 200 {
		t.Fatalf("flagging %s on %s: %d %s", vin, day, resp.StatusCode, b)
	}
	var evMarks, evListed int
	var evExplain, rules string
	link := `#fraud tr[data-vin="` + vin + `"] a.evidence-link`
	run("console evidence", chromedp.SetValue(chromedp.ID("#date"), day), chromedp.Click(chromedp.CSS(`#scores-form button`)),
		chromedp.WaitVisible(chromedp.CSS(link)), chromedp.Focus(chromedp.CSS(link)), chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(`#evidence-map path.track`)), chromedp.WaitVisible(chromedp.ID("#evidence-counters")),
		into(&rules, chromedp.Text(chromedp.CSS(`#evidence-rules li[data-flag=teleport]`))),
		evalTo(`document.querySelectorAll('#evidence-map path.mark').length`, &evMarks),
		evalTo(`document.querySelectorAll('#evidence-marks li').length`, &evListed),
		into(&evExplain, chromedp.Text(chromedp.ID("#evidence-explain"))), evalTo(`document.activeElement.id`, &focused))
	if focused != "evidence-title" {
		t.Errorf("the evidence view focuses %q, want its title (keyboard users land on what they opened)", focused)
	}
	flagWords := "Flag teleport: position jumped 41.3 km in 2 s; the day's points were reduced."
	if evMarks == 0 || evMarks != evListed || !strings.HasPrefix(evExplain, explain) || !strings.HasSuffix(evExplain, flagWords) {
		t.Errorf("evidence of %s on %s: %d marks on the map, %d listed; words %q, want the owner's %q and then %q", vin, day, evMarks, evListed, evExplain, explain, flagWords)
	}
	if rules != "teleport: position jumped 41.3 km in 2 s" {
		t.Errorf("evidence: rule %q, want teleport with its reason", rules)
	}
	axe("console evidence")
	shot("console-evidence")
	if err := <-sent; err != nil {
		t.Errorf("sending day 2: %v", err)
	}

	// The ledger publisher's status: once the book is quiet, the console's
	// published size is the size of the cosigned /ledger/checkpoint.
	var pubSize, quorum string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		run("console publisher", chromedp.WaitVisible(chromedp.ID("#published-size")),
			into(&pubSize, chromedp.Text(chromedp.ID("#published-size"))), into(&quorum, chromedp.Text(chromedp.ID("#quorum-status"))))
		if cs := checkpointSize(t, base); pubSize == strconv.FormatUint(cs, 10) || time.Now().After(deadline) {
			if pubSize != strconv.FormatUint(cs, 10) {
				t.Errorf("console: published size %s, /ledger/checkpoint cosigned %d (%s)", pubSize, cs, quorum)
			}
			break
		}
	}
	var cosigners int
	run("console cosigners", evalTo(`document.querySelectorAll('#cosigners tbody tr[data-witness]').length`, &cosigners))
	if cosigners != 3 {
		t.Errorf("console: %d witnesses in the cosign table, want 3", cosigners)
	}
	t.Logf("console: published size %s, %s, %d witnesses", pubSize, quorum, cosigners)
}

// pick returns one of the demo owner's vehicles with harsh events on day
// and the leaf index of a credit of it the ledger proves, or "".
func pick(c client, sim *fleet.Sim, day string) (string, uint64) {
	var mine struct{ Vehicles []string }
	c.get("/v1/me/vehicles", &mine)
	for _, vin := range mine.Vehicles {
		var reps struct {
			Reports []struct {
				Date                                string
				HarshBrake, HarshAccel, HarshCorner int `json:"-"`
				HB                                  int `json:"harsh_brake"`
				HA                                  int `json:"harsh_accel"`
				HC                                  int `json:"harsh_corner"`
			}
		}
		if c.get("/v1/vehicles/"+vin+"/reports?from="+day+"&to="+day, &reps) != 200 || len(reps.Reports) == 0 ||
			reps.Reports[0].HB+reps.Reports[0].HA+reps.Reports[0].HC == 0 {
			continue
		}
		var pts struct {
			Entries []struct {
				LeafIndex uint64 `json:"leaf_index"`
				Proof     *struct{}
			}
		}
		if c.get("/v1/vehicles/"+vin+"/points", &pts) != 200 {
			continue
		}
		for _, e := range pts.Entries {
			if e.Proof != nil {
				return vin, e.LeafIndex
			}
		}
	}
	return "", 0
}

// tamperProxy forwards to base, flipping the first hash of every
// inclusion proof it passes on.
func tamperProxy(t *testing.T, base string) string {
	u, _ := url.Parse(base)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/v1/ledger/leaves/") || !strings.HasSuffix(resp.Request.URL.Path, "/proof") {
			return nil
		}
		var p map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			return err
		}
		resp.Body.Close()
		if hs, ok := p["proof"].([]any); ok && len(hs) > 0 {
			h := []byte(hs[0].(string))
			h[0] = "10"[map[bool]int{true: 1, false: 0}[h[0] == '1']]
			hs[0] = string(h)
		}
		b, _ := json.Marshal(p)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// rewriteProxy forwards to base, passing the bodies of the answers whose
// path match selects through edit.
func rewriteProxy(t *testing.T, base string, match func(path string) bool, edit func([]byte) []byte) string {
	u, _ := url.Parse(base)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !match(resp.Request.URL.Path) || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = edit(b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		resp.Header.Del("Content-Encoding")
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// stripCosignatures drops the first n signature lines of a note that are
// not the log's (whose key name is the origin, the note's first line).
func stripCosignatures(note string, n int) string {
	cut := strings.Index(note, "\n\n")
	if cut < 0 {
		return note
	}
	origin := note[:strings.Index(note, "\n")]
	var b strings.Builder
	b.WriteString(note[:cut+2])
	for _, l := range strings.SplitAfter(note[cut+2:], "\n") {
		if n > 0 && strings.HasPrefix(l, "\u2014 ") && !strings.HasPrefix(l, "\u2014 "+origin+" ") {
			n--
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// cosignatures counts the signature lines of /ledger/checkpoint that are
// not the log's.
func cosignatures(t *testing.T, base string) int {
	resp, err := http.Get(base + "/ledger/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	note := string(b)
	return strings.Count(note, "\n\u2014 ") - strings.Count(note, "\n\u2014 "+note[:strings.Index(note, "\n")]+" ")
}

func checkpointRoot(t *testing.T, base string) string {
	resp, err := http.Get(base + "/ledger/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 {
		t.Fatalf("checkpoint %q", b)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(root)
}

// checkpointSize is the tree size of /ledger/checkpoint (the cosigned one).
func checkpointSize(t *testing.T, base string) uint64 {
	resp, err := http.Get(base + "/ledger/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 {
		t.Fatalf("checkpoint %q", b)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q: %v", lines[1], err)
	}
	return n
}

func num(s string) int64 {
	n, _ := strconv.ParseInt(strings.NewReplacer(",", "", " ", "").Replace(strings.TrimSpace(s)), 10, 64)
	return n
}

// axeChecker returns a check that injects axe-core (testdata, vendored by
// vendor.sh) into the current page and fails on serious or critical
// violations.
func axeChecker(t *testing.T, b context.Context) func(page string) {
	src, err := os.ReadFile("testdata/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	return func(page string) {
		t.Helper()
		var out []struct {
			ID, Impact, Help string
			Nodes            []struct{ Target []any }
		}
		tctx, cancel := context.WithTimeout(b, 2*time.Minute)
		defer cancel()
		err := chromedp.Do(tctx, chromedp.Evaluate[chromedp.Void](string(src)),
			evalTo(`axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical'))`,
				&out, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Errorf("axe on %s: %v", page, err)
			return
		}
		for _, v := range out {
			t.Errorf("axe on %s: %s (%s): %s, %d node(s), first %v", page, v.ID, v.Impact, v.Help, len(v.Nodes), v.Nodes[0].Target)
		}
		t.Logf("axe on %s: %d serious or critical violations", page, len(out))
	}
}

// into runs the action and stores its value in dst: the steps of one
// chromedp.Do return no value.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		if err == nil {
			*dst = v
		}
		return chromedp.Void{}, err
	}
}

// evalTo evaluates the expression and decodes its value into dst.
func evalTo[T any](expr string, dst *T, opts ...chromedp.EvaluateOption) chromedp.Action[chromedp.Void] {
	return into(dst, chromedp.Evaluate[T](expr, opts...))
}

// attr stores the attribute of the first element the selector matches in
// dst, and fails when the element lacks it.
func attr[S chromedp.Selectable](sel S, name string, dst *string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		r, err := chromedp.AttributeValue(sel, name)(ctx, t)
		if err == nil && !r.Exists {
			err = fmt.Errorf("no attribute %s on %v", name, sel)
		}
		*dst = r.Value
		return chromedp.Void{}, err
	}
}
