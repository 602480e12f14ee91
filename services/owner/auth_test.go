package owner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chschema "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/auth/authtest"
	"github.com/minecart/minecart/services/owner"
)

// callers is an authenticator with an operator ("ops"), owner-1 (owner of
// v-1), owner-2 (no vehicle) and a partner, and their tokens.
type callers struct {
	auth                     *auth.Authenticator
	operator, owner1, owner2 string
	partner                  string
}

func testAuth(t testing.TB) callers {
	t.Helper()
	serde := schemas.SingleObject()
	creds := &authtest.MemTopic{}
	ctx := context.Background()
	bind, err := serde.Marshal(&avro.AccountBinding{VehicleID: "v-1", Owner: "owner-1", UpdatedMs: now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Credentials: creds, Bindings: memState{"v-1": bind}, Serde: serde,
		SessionKey: []byte(strings.Repeat("k", 32)), Now: func() time.Time { return now }, Rate: auth.Limit{Rate: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	c := callers{auth: a}
	if c.operator, err = auth.NewToken(ctx, creds, serde, auth.RoleOperator, "ops", now); err != nil {
		t.Fatal(err)
	}
	if c.partner, err = auth.NewToken(ctx, creds, serde, auth.RolePartner, "acme", now); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"owner-1", "owner-2"} {
		if _, err := auth.SetPassword(ctx, creds, serde, o, "correct horse battery", now); err != nil {
			t.Fatal(err)
		}
	}
	if c.owner1, _, err = a.Issue("owner-1"); err != nil {
		t.Fatal(err)
	}
	if c.owner2, _, err = a.Issue("owner-2"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAuthorization: every declared route refuses a request without
// credentials (401); an owner reads its own vehicle and no other (403),
// a partner no vehicle (403), an operator every vehicle. The database is
// empty: a caller let through gets 404 (no telemetry of the vehicle).
func TestAuthorization(t *testing.T) {
	srv := connect(t, chtest.Start(t))
	if err := chschema.Migrate(context.Background(), srv); err != nil {
		t.Fatal(err)
	}
	c := testAuth(t)
	h, err := owner.NewHandler(owner.Config{Conn: srv, Auth: c.auth, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mux, ok := h.(*auth.Mux)
	if !ok {
		t.Fatalf("NewHandler returns %T, not an *auth.Mux whose routes can be listed", h)
	}
	routes := mux.Routes()
	if len(routes) < 6 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, r := range routes {
		if len(r.Roles) == 0 {
			t.Errorf("route %s is public", r.Pattern)
		}
		method, path, _ := strings.Cut(r.Pattern, " ")
		if path == "" {
			method, path = "GET", method
		}
		path = strings.ReplaceAll(path, "{vin}", "v-1")
		for _, tok := range []string{"", "Bearer", "Bearer nonsense", "Bearer operator:ops:wrong", "Basic b3duZXI6eA=="} {
			if code := do(t, h, method, path, tok); code != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", method, path, tok, code)
			}
		}
	}
	for _, c := range []struct {
		who, tok, path string
		code           int
	}{
		{"owner-1", c.owner1, "/v1/vehicles/v-1/reports", 404},
		{"owner-1", c.owner1, "/v1/vehicles/v-2/reports", 403},
		{"owner-1", c.owner1, "/v1/vehicles/nosuch/reports", 403},
		{"owner-2", c.owner2, "/v1/vehicles/v-1/reports", 403},
		{"owner-2", c.owner2, "/v1/vehicles/v-1/position", 403},
		{"owner-2", c.owner2, "/v1/vehicles/v-1/track", 403},
		{"owner-2", c.owner2, "/v1/vehicles/v-1/condition", 403},
		{"owner-2", c.owner2, "/v1/vehicles/v-1/points", 403},
		{"partner", c.partner, "/v1/vehicles/v-1/reports", 403},
		{"operator", c.operator, "/v1/vehicles/v-2/reports", 404},
		{"operator", c.operator, "/v1/vehicles/v-1/position", 404},
		{"owner-1", c.owner1, "/v1/vehicles/a%2Fb/reports", 400},
		{"owner-1", c.owner1, "/v1/fleet/scores", 403},
		{"partner", c.partner, "/v1/fleet/scores", 403},
		{"operator", c.operator, "/v1/fleet/scores?date=2026-11-20", 200},
	} {
		if code := do(t, h, "GET", c.path, "Bearer "+c.tok); code != c.code {
			t.Errorf("%s GET %s: %d, want %d", c.who, c.path, code, c.code)
		}
	}
}

func do(t *testing.T, h http.Handler, method, path, authz string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://owner"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}
