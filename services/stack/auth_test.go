package stack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
)

// TestAuthAttacks attacks the owner and redemption APIs of the embedded
// stack (real broker, real ClickHouse) as a stranger, as an owner after
// someone else's vehicles and points, and as a password guesser; every
// attempt must fail, and nothing an attacker sends reaches the
// redemptions topic.
func TestAuthAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Start(ctx, Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClickHouseDSN: ch.DSN(),
		IdleTimeout: 8 * time.Second, SessionTimeout: time.Second, Logger: testLogger(t),
		Rate: auth.Limit{Rate: 0.05, Burst: 30}}) // a token every 20 s: the rate test's burst runs out
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sim := testSim(t)
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	vs := sim.Vehicles()
	ownerA, ownerB, ownerC := OwnerOf(0), OwnerOf(2), OwnerOf(4) // A owns vehicles 0 and 1, B 2 and 3
	pwA, err := st.DemoOwner(ctx, ownerA)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"session.key", "operator.token", "demo-owner.password"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	for _, o := range []string{ownerB, ownerC} {
		c, err := auth.SetPassword(ctx, st.Producer, st.Serde, o, "password of "+o, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.waitCredential(ctx, c.Subject, func(got *avro.Credential) bool { return got.Generation == c.Generation }); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + st.HTTPAddr()
	redemptions := func() int {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n := 0
		if err := st.scan(rctx, pipelines.TopicRedemptions, func(pipelines.Record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := redemptions()

	// Every route: public only if listed here, else 401 without
	// credentials (and with a forged one). A new route must be declared
	// with its roles, or added here deliberately.
	public := map[string]bool{"POST /v1/login": true, "POST /v1/logout": true, "/metrics": true,
		"/v1/ledger/": true, "/ledger/": true, "/": true,
		"GET /{$}": true, "GET /explorer": true, "GET /console": true, "GET /assets/": true} // the web faces' pages and assets
	vars := strings.NewReplacer("{vin}", vs[0].VehicleID, "{owner}", ownerA, "{id}", "x")
	routes := st.Routes()
	guarded := 0
	for _, r := range routes {
		if len(r.Roles) == 0 {
			if !public[r.Pattern] {
				t.Errorf("route %s is public but not in this test's list of public routes", r.Pattern)
			}
			continue
		}
		guarded++
		method, path, found := strings.Cut(r.Pattern, " ")
		if !found {
			method, path = "GET", method
		}
		path = vars.Replace(path)
		for _, tok := range []string{"", "garbage", "operator:admin:" + strings.Repeat("A", 43), "partner:acme:x"} {
			body := ""
			if method == "POST" {
				body = `{"owner":"` + ownerA + `","partner":"` + SimPartner + `","item_id":"coffee","quantity":1}`
			}
			if code, _, _ := call(t, method, base+path, tok, body, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", method, path, tok, code)
			}
		}
	}
	if guarded < 10 {
		t.Fatalf("%d guarded routes of %d: the owner or redemption API is not mounted", guarded, len(routes))
	}

	// Owner A logs in: a session token and an HttpOnly SameSite=Strict cookie.
	code, body, hdr := call(t, "POST", base+"/v1/login", "", `{"owner":"`+ownerA+`","password":"`+pwA+`"}`, nil)
	var sess auth.Session
	if code != http.StatusOK || json.Unmarshal(body, &sess) != nil || sess.Token == "" {
		t.Fatalf("login of %s: %d %s", ownerA, code, body)
	}
	cookie := hdr.Get("Set-Cookie")
	if !strings.Contains(cookie, auth.CookieName+"=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("session cookie %q", cookie)
	}
	a := sess.Token
	if code, body, _ := call(t, "GET", base+"/v1/whoami", "", "", map[string]string{"Cookie": auth.CookieName + "=" + a}); code != 200 || !strings.Contains(string(body), ownerA) {
		t.Errorf("whoami with the cookie: %d %s", code, body)
	}

	for _, c := range []struct {
		name, method, path, body string
		code                     int
	}{
		// A's own vehicle: allowed (no telemetry was sent: 404).
		{"own vehicle", "GET", "/v1/vehicles/" + vs[0].VehicleID + "/position", "", 404},
		{"own second vehicle", "GET", "/v1/vehicles/" + vs[1].VehicleID + "/track", "", 404},
		{"own balance", "GET", "/v1/accounts/" + ownerA + "/balance", "", 200},
		// B's: refused.
		{"B's position", "GET", "/v1/vehicles/" + vs[2].VehicleID + "/position", "", 403},
		{"B's track", "GET", "/v1/vehicles/" + vs[2].VehicleID + "/track", "", 403},
		{"B's reports", "GET", "/v1/vehicles/" + vs[3].VehicleID + "/reports", "", 403},
		{"B's condition", "GET", "/v1/vehicles/" + vs[2].VehicleID + "/condition", "", 403},
		{"B's points", "GET", "/v1/vehicles/" + vs[2].VehicleID + "/points", "", 403},
		{"B's balance", "GET", "/v1/accounts/" + ownerB + "/balance", "", 403},
		{"redeem from B", "POST", "/v1/redemptions", `{"owner":"` + ownerB + `","partner":"` + SimPartner + `","item_id":"coffee","quantity":1}`, 403},
		{"operator query", "GET", "/v1/fleet/scores", "", 403},
		// Malformed redemptions: refused before anything is produced.
		{"trailing JSON", "POST", "/v1/redemptions", `{"partner":"` + SimPartner + `","item_id":"coffee","quantity":1}{"owner":"` + ownerB + `"}`, 400},
		{"60 kB owner id", "POST", "/v1/redemptions", `{"owner":"` + strings.Repeat("o", 60_000) + `","partner":"` + SimPartner + `","item_id":"coffee","quantity":1}`, 400},
		{"quantity 0", "POST", "/v1/redemptions", `{"partner":"` + SimPartner + `","item_id":"coffee","quantity":0}`, 400},
		{"vehicle id with a slash", "GET", "/v1/vehicles/a%2Fb%20c/position", "", 400},
	} {
		if code, body, _ := call(t, c.method, base+c.path, a, c.body, nil); code != c.code {
			t.Errorf("%s: %s %s: %d %s, want %d", c.name, c.method, c.path, code, body, c.code)
		}
	}
	if after := redemptions(); after != before {
		t.Errorf("the attacks produced %d redemption requests", after-before)
	}
	// The operator reads every vehicle and the all-vehicles queries, and
	// spends nobody's points.
	op := st.OperatorToken
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/v1/vehicles/" + vs[2].VehicleID + "/position", "", 404},
		{"GET", "/v1/accounts/" + ownerB + "/balance", "", 200},
		{"GET", "/v1/fleet/scores?date=2026-11-02", "", 200},
		{"POST", "/v1/redemptions", `{"owner":"` + ownerB + `","partner":"` + SimPartner + `","item_id":"coffee","quantity":1}`, 403},
	} {
		if code, body, _ := call(t, c.method, base+c.path, op, c.body, nil); code != c.code {
			t.Errorf("operator %s %s: %d %s, want %d", c.method, c.path, code, body, c.code)
		}
	}

	// Rate limit: owner C's bucket holds 30 requests; the next is 429
	// with a Retry-After.
	code, body, _ = call(t, "POST", base+"/v1/login", "", `{"owner":"`+ownerC+`","password":"password of `+ownerC+`"}`, nil)
	var sc auth.Session
	if code != 200 || json.Unmarshal(body, &sc) != nil {
		t.Fatalf("login of %s: %d %s", ownerC, code, body)
	}
	limited := 0
	for i := 0; i < 40; i++ {
		code, _, hdr := call(t, "GET", base+"/v1/whoami", sc.Token, "", nil)
		if code == http.StatusTooManyRequests {
			limited++
			if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("429 with Retry-After %q", hdr.Get("Retry-After"))
			}
		}
	}
	if limited < 5 {
		t.Errorf("%d of 40 requests limited, want at least 5 past a burst of 30", limited)
	}
	// A's own bucket is untouched.
	if code, _, _ := call(t, "GET", base+"/v1/whoami", a, "", nil); code != 200 {
		t.Errorf("owner A limited by C's requests: %d", code)
	}

	// Login throttle (last: it locks this client address out): five wrong
	// passwords for B, then even the right one is 429 for a while.
	for i := 0; i < 5; i++ {
		if code, body, _ := call(t, "POST", base+"/v1/login", "", `{"owner":"`+ownerB+`","password":"guess `+strconv.Itoa(i)+`"}`, nil); code != http.StatusUnauthorized {
			t.Errorf("wrong password %d: %d %s, want 401", i, code, body)
		}
	}
	code, body, hdr = call(t, "POST", base+"/v1/login", "", `{"owner":"`+ownerB+`","password":"password of `+ownerB+`"}`, nil)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("login after 5 failures: %d %s (Retry-After %q), want 429", code, body, hdr.Get("Retry-After"))
	}
}

// call sends a request with the bearer token tok (""/none) and a JSON
// body (""/none), with extra headers.
func call(t *testing.T, method, url, tok, body string, headers map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == "POST" {
		req.Header.Set("Idempotency-Key", "k-"+strconv.Itoa(len(body)))
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}
