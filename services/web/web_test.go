package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/auth/authtest"
	"github.com/minecart/minecart/services/web"
)

type fixture struct {
	srv             *httptest.Server
	operator, owner string
}

func newFixture(t *testing.T, catalog func() ([]web.CatalogItem, error)) fixture {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	return newFixtureWith(t, pub, catalog)
}

func newFixtureKey(t *testing.T, pub ed25519.PublicKey) fixture {
	t.Helper()
	return newFixtureWith(t, pub, nil)
}

func newFixtureWith(t *testing.T, pub ed25519.PublicKey, catalog func() ([]web.CatalogItem, error)) fixture {
	t.Helper()
	serde := schemas.SingleObject()
	creds := &authtest.MemTopic{}
	ctx := context.Background()
	now := time.Now()
	a, err := auth.New(auth.Config{Credentials: creds, Serde: serde, SessionKey: []byte(strings.Repeat("k", 32)),
		Rate: auth.Limit{Rate: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{}
	if f.operator, err = auth.NewToken(ctx, creds, serde, auth.RoleOperator, "ops", now); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.SetPassword(ctx, creds, serde, "owner-1", "correct horse battery", now); err != nil {
		t.Fatal(err)
	}
	if f.owner, _, err = a.Issue("owner-1"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "minecart_pipeline_consumer_lag"}, []string{"stage", "topic", "partition"})
	lag.WithLabelValues("ingest", "minecart.telemetry.raw", "3").Set(42)
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "minecart_other_total"})
	cosign := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "minecart_ledger_cosign_seconds"}, []string{"witness"})
	cosign.WithLabelValues("w1").Observe(0.25)
	cosign.WithLabelValues("w1").Observe(0.75)
	reg.MustRegister(lag, other, cosign)
	h, err := web.NewHandler(web.Config{Auth: a, LedgerKey: pub, Metrics: reg, Catalog: catalog, Version: "t1",
		Vehicles: func(owner string) []string {
			if owner == "owner-1" {
				return []string{"v-2", "v-1"}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f fixture) get(t *testing.T, path, tok string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestPages: the pages and assets carry the strict CSP and the security
// headers; pages are never cached and name the assets with the version,
// assets are cached for a year; the page hands over the ledger's verifier
// key; nothing on a page is inline script or style.
func TestPages(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/", "/explorer", "/console"} {
		code, h, body := f.get(t, p, "")
		if code != 200 || h.Get("Content-Security-Policy") != web.CSP || h.Get("Cache-Control") != "no-store" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %d %v", p, code, h)
		}
		if !strings.Contains(body, `data-vkey="minecart/ledger&#43;`) || !strings.Contains(body, "/assets/js/") || !strings.Contains(body, "?v=t1") {
			t.Errorf("%s: no verifier key, module or versioned asset: %.400s", p, body)
		}
		for _, bad := range []string{"<script>", " style=", "<style", "javascript:", " onclick=", "http://", "https://"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s holds %q", p, bad)
			}
		}
	}
	for _, p := range []string{"/assets/js/common.js", "/assets/js/owner.js", "/assets/vendor/leaflet.js", "/assets/css/app.css",
		"/assets/vendor/china-provinces.geojson"} {
		code, h, body := f.get(t, p, "")
		if code != 200 || h.Get("Cache-Control") != web.AssetCache || h.Get("Content-Security-Policy") != web.CSP || len(body) < 100 {
			t.Errorf("%s: %d %v (%d bytes)", p, code, h, len(body))
		}
	}
	if code, _, _ := f.get(t, "/assets/js/", ""); code != 404 {
		t.Errorf("directory listing: %d, want 404", code)
	}
	if code, _, _ := f.get(t, "/assets/nope.js", ""); code != 404 {
		t.Errorf("missing asset: %d, want 404", code)
	}
	if code, h, _ := f.get(t, "/assets/vendor/china-provinces.geojson", ""); code != 200 || h.Get("Content-Type") != "application/geo+json" {
		t.Errorf("geojson content type %q", h.Get("Content-Type"))
	}
}

// TestAssetsMatchLock: the embedded vendored files are the ones
// vendor.lock names (the same check as vendor.sh, in Go).
func TestAssetsMatchLock(t *testing.T) {
	lock, err := os.ReadFile("vendor.lock")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(lock), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, path, ok := strings.Cut(line, "  ")
		b, err := os.ReadFile(path)
		if !ok || err != nil {
			t.Fatalf("lock line %q: %v", line, err)
		}
		if got := sha256Hex(b); got != sum {
			t.Errorf("%s: sha256 %s, the lock says %s", path, got, sum)
		}
		n++
	}
	if n < 7 {
		t.Errorf("%d files in the lock", n)
	}
}

// TestJSONRoutes: who may call what, and the answers.
func TestJSONRoutes(t *testing.T) {
	f := newFixture(t, func() ([]web.CatalogItem, error) {
		return []web.CatalogItem{{Partner: "b", ItemID: "x", PricePoints: 5}, {Partner: "a", ItemID: "y", PricePoints: 9},
			{Partner: "a", ItemID: "z", PricePoints: 1, Left: -1}}, nil
	})
	for _, c := range []struct {
		path, tok string
		code      int
	}{
		{"/v1/me/vehicles", "", 401}, {"/v1/catalog", "", 401}, {"/v1/console/metrics", "", 401},
		{"/v1/console/metrics", f.owner, 403}, {"/v1/me/vehicles", "garbage", 401},
		{"/v1/console/deadletters", "", 401}, {"/v1/console/deadletters", f.owner, 403}, {"/v1/console/deadletters", f.operator, 200},
	} {
		if code, _, body := f.get(t, c.path, c.tok); code != c.code {
			t.Errorf("%s with %q: %d %s, want %d", c.path, c.tok, code, body, c.code)
		}
	}
	var v web.Vehicles
	_, _, body := f.get(t, "/v1/me/vehicles", f.owner)
	if json.Unmarshal([]byte(body), &v) != nil || v.Owner != "owner-1" || strings.Join(v.Vehicles, ",") != "v-1,v-2" {
		t.Errorf("owner's vehicles: %s", body)
	}
	_, _, body = f.get(t, "/v1/me/vehicles", f.operator)
	if json.Unmarshal([]byte(body), &v) != nil || len(v.Vehicles) != 0 {
		t.Errorf("operator's vehicles: %s", body)
	}
	var cat struct{ Items []web.CatalogItem }
	_, _, body = f.get(t, "/v1/catalog", f.owner)
	if json.Unmarshal([]byte(body), &cat) != nil || len(cat.Items) != 3 || cat.Items[0].ItemID != "z" || cat.Items[2].Partner != "b" {
		t.Errorf("catalogue: %s", body)
	}
	var m struct{ Metrics map[string][]web.Sample }
	code, _, body := f.get(t, "/v1/console/metrics", f.operator)
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("metrics: %d %s", code, body)
	}
	lag := m.Metrics["minecart_pipeline_consumer_lag"]
	if len(lag) != 1 || lag[0].Value != 42 || lag[0].Labels["partition"] != "3" || m.Metrics["minecart_other_total"] != nil {
		t.Errorf("metrics: %s", body)
	}
	if cs := m.Metrics["minecart_ledger_cosign_seconds"]; len(cs) != 1 || cs[0].Value != 2 || cs[0].Sum == nil || *cs[0].Sum != 1 || cs[0].Labels["witness"] != "w1" {
		t.Errorf("metrics: the cosign histogram as count and sum: %s", body)
	}

	broken := newFixture(t, func() ([]web.CatalogItem, error) { return nil, errors.New("state unreadable") })
	if code, _, body := broken.get(t, "/v1/catalog", broken.owner); code != 500 || strings.Contains(body, "unreadable") {
		t.Errorf("catalogue failure: %d %s, want 500 without the detail", code, body)
	}
}

func TestConfigValidate(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	a := &auth.Authenticator{}
	vs := func(string) []string { return nil }
	for name, c := range map[string]web.Config{
		"no auth":     {LedgerKey: pub, Vehicles: vs},
		"no key":      {Auth: a, Vehicles: vs},
		"no vehicles": {Auth: a, LedgerKey: pub},
	} {
		if _, err := web.NewHandler(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := web.NewHandler(web.Config{Auth: a, LedgerKey: pub, Vehicles: vs, Origin: "bad origin"}); err == nil {
		t.Error("an origin with a space: accepted")
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestAssetsGzip: text assets go gzipped to a client that accepts it and
// plain to one that does not, the same bytes either way.
func TestAssetsGzip(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"vendor/leaflet.js", "vendor/china-provinces.geojson", "js/common.js", "css/app.css"} {
		want, err := os.ReadFile("assets/" + p)
		if err != nil {
			t.Fatal(err)
		}
		for _, ae := range []string{"gzip, deflate, br", "", "gzip;q=0"} {
			req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/assets/"+p, nil)
			req.Header.Set("Accept-Encoding", ae)
			if ae == "" {
				req.Header.Set("Accept-Encoding", "identity")
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			zipped := resp.Header.Get("Content-Encoding") == "gzip"
			if zipped != (ae == "gzip, deflate, br") {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q", p, ae, resp.Header.Get("Content-Encoding"))
			}
			if zipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				plain, _ := io.ReadAll(zr)
				t.Logf("%s: %d bytes, %d gzipped", p, len(plain), len(body))
				body = plain
			}
			if !bytes.Equal(body, want) || resp.Header.Get("Cache-Control") != web.AssetCache || resp.Header.Get("Content-Type") == "" {
				t.Errorf("%s with Accept-Encoding %q: %d bytes (want %d), %v", p, ae, len(body), len(want), resp.Header)
			}
		}
	}
}
