package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"

	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/settletest"
)

func TestHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	srv := env.API(2 * time.Second)
	alice := env.Token("alice")

	get := func(path string, v any) int {
		t.Helper()
		code, body, err := settletest.Do(srv, http.MethodGet, path, alice, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if v != nil && code == http.StatusOK {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatal(err)
			}
		}
		return code
	}
	mug := api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2}
	cases := []struct {
		name   string
		key    string
		body   api.RedemptionBody
		code   int
		status settlement.Status
		reason string
	}{
		{"no key", "", mug, http.StatusBadRequest, "", ""},
		{"no item", "k0", api.RedemptionBody{Owner: "alice", Partner: "acme", Quantity: 1}, http.StatusBadRequest, "", ""},
		{"holding account", "k0", api.RedemptionBody{Owner: "vehicle:v1", Partner: "acme", ItemID: "mug", Quantity: 1}, http.StatusBadRequest, "", ""},
		{"no quantity", "k0", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug"}, http.StatusBadRequest, "", ""},
		{"unknown item", "k1", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "car", Quantity: 1}, http.StatusCreated, settlement.StatusRejected, settlement.ReasonUnknownItem},
		{"two mugs", "k2", mug, http.StatusCreated, settlement.StatusConfirmed, ""},
		{"same key again", "k2", mug, http.StatusCreated, settlement.StatusConfirmed, ""},
		{"same key, other order", "k2", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1}, http.StatusUnprocessableEntity, "", ""},
		{"too poor", "k3", mug, http.StatusCreated, settlement.StatusRejected, settlement.ReasonInsufficient},
		{"max points", "k4", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, MaxPoints: ptr(int64(29))}, http.StatusCreated, settlement.StatusRejected, settlement.ReasonPriceChanged},
	}
	for _, c := range cases {
		code, r, err := settletest.PostAs(srv, alice, c.key, c.body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code != c.code || r.Status != c.status || r.Reason != c.reason {
			t.Errorf("%s: HTTP %d %s %q, want %d %s %q", c.name, code, r.Status, r.Reason, c.code, c.status, c.reason)
		}
		if code == http.StatusCreated && r.ID != settlement.RedemptionID(c.body.Owner, c.key) {
			t.Errorf("%s: id %s", c.name, r.ID)
		}
		if c.status == settlement.StatusConfirmed && (r.Debit == nil || r.Debit.Checkpoint == "" || r.Points != 60) {
			t.Errorf("%s: confirmed without debit proof: %+v", c.name, r)
		}
	}
	// A partner whose topic nobody created: the stage creates it before
	// taking in the item, so the order can be delivered.
	env.PublishItem(avro.CatalogItem{Partner: "newco", ItemID: "pen", PricePoints: 10, Active: true})
	env.Fund("carol", 10)
	env.WaitBalance("carol", 10)
	env.Wait(10*time.Second, func() bool { _, ok := env.State.Get(settlement.ItemStateKey("newco", "pen")); return ok }, func() string { return "newco item never taken in" })
	code, r0, err := settletest.Post(srv, "n1", api.RedemptionBody{Owner: "carol", Partner: "newco", ItemID: "pen", Quantity: 1})
	if err != nil || code != http.StatusCreated || r0.Status != settlement.StatusConfirmed {
		t.Errorf("newco redemption: HTTP %d %+v", code, r0)
	}
	kafkatest.WaitRecords(t, env.Brokers, pipelines.PartnerRedemptionsTopic("newco"), 1, 10*time.Second)

	var bal api.BalanceJSON
	// The confirmed redemption is a hold: its 60 points stay reserved
	// until the partner's ack posts it.
	if code := get("/v1/accounts/alice/balance", &bal); code != http.StatusOK || bal != (api.BalanceJSON{Owner: "alice", Balance: 100, Reserved: 60, Available: 40}) {
		t.Errorf("balance: HTTP %d %+v, want 100 with 60 reserved", code, bal)
	}
	var r api.RedemptionJSON
	if code := get("/v1/redemptions/"+settlement.RedemptionID("alice", "k2"), &r); code != http.StatusOK || r.Status != settlement.StatusConfirmed {
		t.Errorf("get redemption: HTTP %d %+v", code, r)
	}
	// An unknown redemption is 404 to an operator only (below); to an
	// owner it is not theirs.
	if code := get("/v1/redemptions/nope", nil); code != http.StatusForbidden {
		t.Errorf("unknown redemption: HTTP %d", code)
	}
}

// TestAttacks: each request an attacker would send is refused with the
// status below, and nothing of them reaches the redemptions topic.
func TestAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme", "zeta")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	srv := env.API(2 * time.Second)
	alice, bob := env.Token("alice"), env.Token("bob")
	ctx := context.Background()
	opTok, err := auth.NewToken(ctx, env.Producer, env.Serde, auth.RoleOperator, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	acme, err := auth.NewToken(ctx, env.Producer, env.Serde, auth.RolePartner, "acme", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	zeta, err := auth.NewToken(ctx, env.Producer, env.Serde, auth.RolePartner, "zeta", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The tokens work once the replica's credentials table has them.
	env.Wait(10*time.Second, func() bool {
		code, _, _ := settletest.Do(srv, http.MethodGet, "/v1/accounts/alice/balance", opTok, "", "")
		c2, _, _ := settletest.Do(srv, http.MethodGet, "/v1/redemptions/x", zeta, "", "")
		return code == http.StatusOK && c2 == http.StatusForbidden
	}, func() string { return "operator and partner tokens not accepted" })

	// One legitimate redemption, to read back.
	code, mine, err := settletest.PostAs(srv, alice, "ok1", api.RedemptionBody{Partner: "acme", ItemID: "mug", Quantity: 1})
	if err != nil || code != http.StatusCreated || mine.Owner != "alice" {
		t.Fatalf("alice's own redemption: HTTP %d %+v %v", code, mine, err)
	}
	before := count(t, env)

	routes := []string{"POST /v1/redemptions", "GET /v1/redemptions/" + mine.ID, "GET /v1/accounts/alice/balance",
		"POST /v1/transfers", "GET /v1/transfers", "GET /v1/transfers/{id}"}
	xfer := `{"id":"0000000000000000000000000000dead","debit_account":"alice","credit_account":"bob","amount":1}`
	h, _ := api.NewHandler(api.Config{Producer: env.Producer, State: env.State, Serde: env.Serde, Auth: mustAuth(t, env)})
	if got := len(h.(*auth.Mux).Routes()); got != len(routes) {
		t.Fatalf("the API declares %d routes, this test knows %d: add the new one here", got, len(routes))
	}
	doc, err := os.ReadFile("../../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range h.(*auth.Mux).Routes() {
		if len(r.Roles) == 0 {
			t.Errorf("route %s is public", r.Pattern)
		}
		// docs/security.md's route table lists every route with its roles.
		if !strings.Contains(string(doc), "| `"+r.Pattern+"`") {
			t.Errorf("docs/security.md does not list route %s", r.Pattern)
		}
	}
	valid := `{"owner":"alice","partner":"acme","item_id":"mug","quantity":1}`
	for _, c := range []struct {
		name, tok, method, path, body string
		code                          int
	}{
		{"no credentials: redeem", "", "POST", "/v1/redemptions", valid, 401},
		{"no credentials: redemption", "", "GET", "/v1/redemptions/" + mine.ID, "", 401},
		{"no credentials: balance", "", "GET", "/v1/accounts/alice/balance", "", 401},
		{"forged session", alice[:len(alice)-4] + "AAAA", "POST", "/v1/redemptions", valid, 401},
		{"wrong operator secret", "operator:ops:" + strings.Repeat("A", 43), "GET", "/v1/accounts/alice/balance", "", 401},
		{"bob redeems from alice", bob, "POST", "/v1/redemptions", valid, 403},
		{"bob reads alice's balance", bob, "GET", "/v1/accounts/alice/balance", "", 403},
		{"bob reads alice's redemption", bob, "GET", "/v1/redemptions/" + mine.ID, "", 403},
		{"operator redeems", opTok, "POST", "/v1/redemptions", valid, 403},
		{"partner redeems", acme, "POST", "/v1/redemptions", valid, 403},
		{"partner reads a balance", acme, "GET", "/v1/accounts/alice/balance", "", 403},
		{"other partner's order", zeta, "GET", "/v1/redemptions/" + mine.ID, "", 403},
		{"trailing JSON", alice, "POST", "/v1/redemptions", valid + `{"owner":"bob"}`, 400},
		{"trailing garbage", alice, "POST", "/v1/redemptions", valid + `x`, 400},
		{"two objects in an array", alice, "POST", "/v1/redemptions", "[" + valid + "]", 400},
		{"60 kB owner id", alice, "POST", "/v1/redemptions", `{"owner":"` + strings.Repeat("a", 60_000) + `","partner":"acme","item_id":"mug","quantity":1}`, 400},
		{"65-byte owner id", alice, "POST", "/v1/redemptions", `{"owner":"` + strings.Repeat("a", 65) + `","partner":"acme","item_id":"mug","quantity":1}`, 400},
		{"quantity 0", alice, "POST", "/v1/redemptions", `{"owner":"alice","partner":"acme","item_id":"mug","quantity":0}`, 400},
		{"no quantity", alice, "POST", "/v1/redemptions", `{"owner":"alice","partner":"acme","item_id":"mug"}`, 400},
		{"negative quantity", alice, "POST", "/v1/redemptions", `{"owner":"alice","partner":"acme","item_id":"mug","quantity":-1}`, 400},
		{"unknown field", alice, "POST", "/v1/redemptions", `{"owner":"alice","partner":"acme","item_id":"mug","quantity":1,"points":0}`, 400},
		{"bad partner id", alice, "POST", "/v1/redemptions", `{"partner":"../x","item_id":"mug","quantity":1}`, 400},
		{"negative max_points", alice, "POST", "/v1/redemptions", `{"partner":"acme","item_id":"mug","quantity":1,"max_points":-5}`, 400},
		{"129-byte customer id", alice, "POST", "/v1/redemptions", `{"partner":"acme","item_id":"mug","quantity":1,"customer":"` + strings.Repeat("c", 129) + `"}`, 400},
		{"customer id with a newline", alice, "POST", "/v1/redemptions", `{"partner":"acme","item_id":"mug","quantity":1,"customer":"a\nb"}`, 400},
		{"no credentials: transfer", "", "POST", "/v1/transfers", xfer, 401},
		{"no credentials: get transfer", "", "GET", "/v1/transfers/0000000000000000000000000000dead", "", 401},
		{"no credentials: list transfers", "", "GET", "/v1/transfers?account=alice", "", 401},
		{"bob transfers from alice", bob, "POST", "/v1/transfers", xfer, 403},
		{"bob lists alice's transfers", bob, "GET", "/v1/transfers?account=alice", "", 403},
		{"bob reads a transfer not his", bob, "GET", "/v1/transfers/0000000000000000000000000000dead", "", 403},
		{"transfer id not hex", alice, "POST", "/v1/transfers", strings.Replace(xfer, "dead", "DEAD", 1), 400},
		{"transfer unknown flag", alice, "POST", "/v1/transfers", strings.Replace(xfer, `"amount":1`, `"amount":1,"flags":["expire_pending"]`, 1), 400},
	} {
		key := ""
		if c.method == "POST" {
			key = "attack-" + strings.ReplaceAll(c.name, " ", "-")
		}
		code, body, err := settletest.Do(srv, c.method, c.path, c.tok, key, c.body)
		if err != nil {
			t.Fatal(err)
		}
		if code != c.code {
			t.Errorf("%s: HTTP %d %s, want %d", c.name, code, body, c.code)
		}
	}
	// Content-Type other than JSON, with a valid body and key.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/redemptions", strings.NewReader(valid))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Idempotency-Key", "ct")
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("text/plain body: %v %v, want 400", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	// A cross-site form post riding a session cookie.
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/v1/redemptions", strings.NewReader(valid))
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: alice})
	req.Header.Set("Idempotency-Key", "csrf")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post with alice's cookie: %v %v, want 403", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	if after := count(t, env); after != before {
		t.Fatalf("the attacks produced %d redemption requests", after-before)
	}
	// What is allowed: the partner of the order and an operator read it;
	// an operator sees an unknown id as 404.
	for _, c := range []struct {
		tok, path string
		code      int
	}{{acme, "/v1/redemptions/" + mine.ID, 200}, {opTok, "/v1/redemptions/" + mine.ID, 200},
		{opTok, "/v1/redemptions/nope", 404}, {opTok, "/v1/accounts/alice/balance", 200}} {
		if code, body, _ := settletest.Do(srv, "GET", c.path, c.tok, "", ""); code != c.code {
			t.Errorf("GET %s: %d %s, want %d", c.path, code, body, c.code)
		}
	}
}

func mustAuth(t *testing.T, env *settletest.Env) *auth.Authenticator {
	a, err := auth.New(auth.Config{Credentials: env.State, Serde: env.Serde, SessionKey: env.SessionKey})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func count(t *testing.T, env *settletest.Env) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicRedemptions)
	if err != nil {
		t.Fatal(fmt.Errorf("read %s: %w", pipelines.TopicRedemptions, err))
	}
	return len(recs)
}

func ptr[T any](v T) *T { return &v }
