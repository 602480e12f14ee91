package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"

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

	get := func(path string, v any) int {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
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
		{"no item", "k0", api.RedemptionBody{Owner: "alice", Partner: "acme"}, http.StatusBadRequest, "", ""},
		{"holding account", "k0", api.RedemptionBody{Owner: "vehicle:v1", Partner: "acme", ItemID: "mug"}, http.StatusBadRequest, "", ""},
		{"unknown item", "k1", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "car"}, http.StatusCreated, settlement.StatusRejected, settlement.ReasonUnknownItem},
		{"two mugs", "k2", mug, http.StatusCreated, settlement.StatusConfirmed, ""},
		{"same key again", "k2", mug, http.StatusCreated, settlement.StatusConfirmed, ""},
		{"same key, other order", "k2", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1}, http.StatusUnprocessableEntity, "", ""},
		{"too poor", "k3", mug, http.StatusCreated, settlement.StatusRejected, settlement.ReasonInsufficient},
		{"max points", "k4", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", MaxPoints: ptr(int64(29))}, http.StatusCreated, settlement.StatusRejected, settlement.ReasonPriceChanged},
	}
	for _, c := range cases {
		code, r, err := settletest.Post(srv, c.key, c.body)
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
	code, r0, err := settletest.Post(srv, "n1", api.RedemptionBody{Owner: "carol", Partner: "newco", ItemID: "pen"})
	if err != nil || code != http.StatusCreated || r0.Status != settlement.StatusConfirmed {
		t.Errorf("newco redemption: HTTP %d %+v", code, r0)
	}
	kafkatest.WaitRecords(t, env.Brokers, pipelines.PartnerRedemptionsTopic("newco"), 1, 10*time.Second)

	var bal api.BalanceJSON
	if code := get("/v1/accounts/alice/balance", &bal); code != http.StatusOK || bal != (api.BalanceJSON{Owner: "alice", Balance: 40, Available: 40}) {
		t.Errorf("balance: HTTP %d %+v, want 40", code, bal)
	}
	if code := get("/v1/accounts/nobody/balance", &bal); code != http.StatusOK || bal.Balance != 0 {
		t.Errorf("unknown account: HTTP %d %+v", code, bal)
	}
	var r api.RedemptionJSON
	if code := get("/v1/redemptions/"+settlement.RedemptionID("alice", "k2"), &r); code != http.StatusOK || r.Status != settlement.StatusConfirmed {
		t.Errorf("get redemption: HTTP %d %+v", code, r)
	}
	if code := get("/v1/redemptions/nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown redemption: HTTP %d", code)
	}
}

func ptr[T any](v T) *T { return &v }
