package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth/authtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T) (*Authenticator, *authtest.MemTopic, *clock) {
	t.Helper()
	creds := &authtest.MemTopic{}
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	a, err := New(Config{Credentials: creds, Serde: schemas.SingleObject(), SessionKey: []byte(strings.Repeat("k", 32)),
		SessionTTL: time.Hour, Now: clk.now, Rate: Limit{Rate: 1, Burst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	return a, creds, clk
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	if ok, err := VerifyPassword(h, "correct horse battery"); !ok || err != nil {
		t.Errorf("right password: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(h, "correct horse batterY"); ok {
		t.Error("wrong password verified")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		strings.Replace(h, "m=19456", "m=4194304", 1), // 4 GiB: refused, not computed
		strings.Replace(h, "t=2", "t=1000", 1), strings.Replace(h, "v=19", "v=16", 1), "$sha256$00"} {
		if ok, err := VerifyPassword(bad, "correct horse battery"); ok || err == nil {
			t.Errorf("hash %q: %v %v, want an error", bad, ok, err)
		}
	}
}

// FuzzVerifyPassword: no stored string makes verification panic, and
// nothing but the one password verifies.
func FuzzVerifyPassword(f *testing.F) {
	const h = "$argon2id$v=19$m=19456,t=2,p=1$e/FfblxcSy8MgeYkfKAVpw$JM0RWc94GfzxdA4FVuJm70A+hwAB6vPzvr4aAawfsQ4" // of pw-pw-pw-pw-pw, fixed: every fuzz worker has the same
	f.Add(h, "pw-pw-pw-pw-pw")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "x")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, phc, pw string) {
		if strings.Contains(phc, "m=") && len(phc) > 200 {
			return
		}
		ok, err := VerifyPassword(phc, pw)
		if ok && err != nil {
			t.Fatal("ok with an error")
		}
		if ok && pw != "pw-pw-pw-pw-pw" {
			// Only the password a hash was made from verifies: finding
			// another is a preimage of argon2id.
			t.Fatalf("%q verified %q", phc, pw)
		}
	})
}

func TestSessions(t *testing.T) {
	a, creds, clk := newTest(t)
	ctx := context.Background()
	serde := schemas.SingleObject()
	if _, err := SetPassword(ctx, creds, serde, "alice", "alice's password", clk.now()); err != nil {
		t.Fatal(err)
	}
	tok, exp, err := a.Issue("alice")
	if err != nil || !exp.Equal(clk.now().Add(time.Hour)) {
		t.Fatal(err, exp)
	}
	if p, err := a.Verify(tok); err != nil || p != (Principal{Role: RoleOwner, ID: "alice"}) {
		t.Fatalf("fresh session: %+v %v", p, err)
	}
	if _, _, err := a.Issue("bob"); err == nil {
		t.Error("session issued for an owner without a credential")
	}
	forged := func(key any, method jwt.SigningMethod, c claims) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var cur avro.Credential
	v, _ := creds.Get("owner/alice")
	_ = serde.Unmarshal(v, &cur)
	good := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "owner/alice",
		IssuedAt: jwt.NewNumericDate(clk.now()), ExpiresAt: jwt.NewNumericDate(clk.now().Add(time.Hour))}, Gen: cur.Generation}
	if _, err := a.Verify(forged(a.cfg.SessionKey, jwt.SigningMethodHS256, good)); err != nil {
		t.Fatalf("a well-formed token: %v", err)
	}
	other := good
	other.Subject = "operator/alice"
	noExp := good
	noExp.ExpiresAt = nil
	wrongGen := good
	wrongGen.Gen++
	wrongIss := good
	wrongIss.Issuer = "evil"
	for name, s := range map[string]string{
		"other key":        forged([]byte(strings.Repeat("x", 32)), jwt.SigningMethodHS256, good),
		"HS512":            forged(a.cfg.SessionKey, jwt.SigningMethodHS512, good),
		"alg none":         forged(jwt.UnsafeAllowNoneSignatureType, jwt.SigningMethodNone, good),
		"operator subject": forged(a.cfg.SessionKey, jwt.SigningMethodHS256, other),
		"no expiry":        forged(a.cfg.SessionKey, jwt.SigningMethodHS256, noExp),
		"old generation":   forged(a.cfg.SessionKey, jwt.SigningMethodHS256, wrongGen),
		"other issuer":     forged(a.cfg.SessionKey, jwt.SigningMethodHS256, wrongIss),
		"truncated":        tok[:len(tok)-2],
	} {
		if _, err := a.Verify(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A new password ends every session of the old one.
	clk.add(time.Second)
	if _, err := SetPassword(ctx, creds, serde, "alice", "alice's new password", clk.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); err == nil {
		t.Error("a session outlived the password change")
	}
	tok, _, _ = a.Issue("alice")
	clk.add(time.Hour + Leeway + time.Second)
	if _, err := a.Verify(tok); err == nil {
		t.Error("an expired session accepted")
	}
	// Removing the credential ends the sessions too.
	clk.add(-time.Hour - Leeway)
	if err := Remove(ctx, creds, RoleOwner, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); err == nil {
		t.Error("a session outlived its credential")
	}
}

func TestTokens(t *testing.T) {
	a, creds, clk := newTest(t)
	ctx := context.Background()
	serde := schemas.SingleObject()
	op, err := NewToken(ctx, creds, serde, RoleOperator, "ops", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	pa, err := NewToken(ctx, creds, serde, RolePartner, "acme", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Verify(op); err != nil || p != (Principal{RoleOperator, "ops"}) {
		t.Errorf("operator: %+v %v", p, err)
	}
	if p, err := a.Verify(pa); err != nil || p != (Principal{RolePartner, "acme"}) {
		t.Errorf("partner: %+v %v", p, err)
	}
	secret := op[strings.LastIndex(op, ":")+1:]
	for _, bad := range []string{"operator:ops:" + secret + "x", "partner:ops:" + secret, "operator:acme:" + secret,
		"owner:ops:" + secret, "operator:ops", "operator:../x:" + secret, strings.Repeat("a", 5000)} {
		if _, err := a.Verify(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := NewToken(ctx, creds, serde, RoleOwner, "alice", clk.now()); err == nil {
		t.Error("a bearer token for an owner")
	}
	// A new token replaces the old one.
	op2, _ := NewToken(ctx, creds, serde, RoleOperator, "ops", clk.now())
	if _, err := a.Verify(op); err == nil {
		t.Error("the replaced operator token still works")
	}
	if _, err := a.Verify(op2); err != nil {
		t.Error(err)
	}
}

func TestLimits(t *testing.T) {
	b := newBuckets(Limit{Rate: 1, Burst: 3}, 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if ok, _ := b.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if ok, wait := b.allow("a", now); ok || wait != time.Second {
		t.Fatalf("past the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := b.allow("b", now); !ok {
		t.Fatal("b limited by a's requests")
	}
	if ok, _ := b.allow("c", now); ok {
		t.Fatal("a third key admitted into a table of 2 with both in use")
	}
	if ok, _ := b.allow("c", now.Add(2*time.Minute)); !ok {
		t.Fatal("stale keys not dropped")
	}
	if ok, _ := b.allow("a", now.Add(time.Second)); !ok {
		t.Fatal("no token after a second")
	}

	th := newThrottle(3, time.Second, 10*time.Second, 10)
	for i := 0; i < 2; i++ {
		th.fail("k", now)
	}
	if d := th.locked("k", now); d != 0 {
		t.Fatalf("locked after 2 failures: %v", d)
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		th.fail("k", now)
		if d := th.locked("k", now); d != want {
			t.Errorf("failure %d: locked %v, want %v", i+3, d, want)
		}
	}
	if d := th.locked("k", now.Add(11*time.Second)); d != 0 {
		t.Errorf("still locked after the lockout: %v", d)
	}
	th.clear("k")
	th.fail("k", now)
	if d := th.locked("k", now); d != 0 {
		t.Errorf("cleared key locked after one failure: %v", d)
	}
}

// TestLogin runs the login route: the right password gives a session and
// a cookie; wrong passwords and unknown owners the same 401; after
// LoginFree failures the owner (and the address) is 429 with Retry-After,
// even with the right password; requests without credentials are 401 and
// a caller past its bucket is 429.
func TestLogin(t *testing.T) {
	a, creds, clk := newTest(t)
	if _, err := SetPassword(context.Background(), creds, schemas.SingleObject(), "alice", "alice's password", clk.now()); err != nil {
		t.Fatal(err)
	}
	m := NewMux(a)
	a.Mount(m)
	m.HandleFunc("GET /v1/op", Roles{RoleOperator}, func(w http.ResponseWriter, r *http.Request) {})
	do := func(method, path, body, tok, addr string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = addr + ":1234"
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		m.ServeHTTP(w, req)
		return w
	}
	w := do("POST", "/v1/login", `{"owner":"alice","password":"alice's password"}`, "", "10.0.0.1")
	if w.Code != 200 || !strings.Contains(w.Header().Get("Set-Cookie"), "HttpOnly") || !strings.Contains(w.Header().Get("Set-Cookie"), "SameSite=Strict") {
		t.Fatalf("login: %d %s %q", w.Code, w.Body, w.Header().Get("Set-Cookie"))
	}
	for _, body := range []string{`{"owner":"alice","password":"x"}{}`, `{"owner":"alice","password":"x","role":"OPERATOR"}`, `{"owner":"a/b","password":"x"}`} {
		if w := do("POST", "/v1/login", body, "", "10.0.0.9"); w.Code != 400 {
			t.Errorf("login %s: %d, want 400", body, w.Code)
		}
	}
	if w := do("GET", "/v1/whoami", "", "", "10.0.0.1"); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("whoami without credentials: %d", w.Code)
	}
	if w := do("GET", "/v1/op", "", "", "10.0.0.1"); w.Code != 401 {
		t.Errorf("operator route without credentials: %d", w.Code)
	}
	for i := 0; i < 5; i++ {
		owner := "alice"
		if i%2 == 1 {
			owner = "nobody" // an unknown owner fails the same way
		}
		if w := do("POST", "/v1/login", `{"owner":"`+owner+`","password":"guess"}`, "", "10.0.0.2"); w.Code != 401 {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	// 10.0.0.2 made 5 failures: locked, whatever it tries.
	if w := do("POST", "/v1/login", `{"owner":"alice","password":"alice's password"}`, "", "10.0.0.2"); w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("after 5 failures: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	// alice failed 3 times: not locked from another address yet.
	w = do("POST", "/v1/login", `{"owner":"alice","password":"alice's password"}`, "", "10.0.0.3")
	if w.Code != 200 {
		t.Fatalf("alice from another address: %d %s", w.Code, w.Body)
	}
	var tok string
	for _, c := range w.Result().Cookies() {
		if c.Name == CookieName {
			tok = c.Value
		}
	}
	if w := do("GET", "/v1/op", "", tok, "10.0.0.3"); w.Code != 403 {
		t.Errorf("owner on an operator route: %d, want 403", w.Code)
	}
	codes := []int{}
	for i := 0; i < 3; i++ {
		codes = append(codes, do("GET", "/v1/whoami", "", tok, "10.0.0.3").Code)
	}
	if codes[len(codes)-1] != 429 {
		t.Errorf("codes %v: want 429 past the burst of 3", codes)
	}
	clk.add(time.Second)
	if w := do("GET", "/v1/whoami", "", tok, "10.0.0.3"); w.Code != 200 || !strings.Contains(w.Body.String(), `"id":"alice"`) {
		t.Errorf("whoami a second later: %d %s", w.Code, w.Body)
	}
	if rs := m.Routes(); len(rs) != 4 {
		t.Errorf("routes %v", rs)
	}
}

// FuzzVerify: no bearer string is accepted but the tokens issued (nor
// makes Verify panic).
func FuzzVerify(f *testing.F) {
	creds := &authtest.MemTopic{}
	serde := schemas.SingleObject()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a, err := New(Config{Credentials: creds, Serde: serde, SessionKey: []byte(strings.Repeat("k", 32)), Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	op, _ := NewToken(context.Background(), creds, serde, RoleOperator, "ops", now)
	if _, err := SetPassword(context.Background(), creds, serde, "alice", "alice's password", now); err != nil {
		f.Fatal(err)
	}
	sess, _, _ := a.Issue("alice")
	for _, s := range []string{op, sess, "operator:ops:", "partner::", sess + ".", "owner:alice:x", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := a.Verify(tok); err == nil && tok != op && tok != sess {
			t.Fatalf("%q accepted", tok)
		}
	})
}

// FuzzDecodeJSON: a body DecodeJSON accepts is one JSON object of the
// target type and nothing else.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"owner":"a","password":"b"}`, `{"owner":"a"}{}`, `{"owner":"a","x":1}`, ` {"owner":"a"} `, `[]`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var v LoginBody
		if DecodeJSON(httptest.NewRecorder(), req, 4096, &v) != nil {
			return
		}
		trimmed := strings.TrimSpace(body)
		if len(body) > 4096 || !strings.HasPrefix(trimmed, "{") && trimmed != "null" || !strings.HasSuffix(trimmed, "}") && trimmed != "null" {
			t.Fatalf("accepted %q", body)
		}
	})
}

// BenchmarkCredentials: what one login (argon2id), one session check
// (HS256 + a table lookup) and one operator token check (SHA-256) cost; the
// ratio says how many session checks one login is worth.
func BenchmarkCredentials(b *testing.B) {
	creds := &authtest.MemTopic{}
	serde := schemas.SingleObject()
	a, err := New(Config{Credentials: creds, Serde: serde, SessionKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, _ := SetPassword(ctx, creds, serde, "alice", "alice's password", time.Now())
	op, _ := NewToken(ctx, creds, serde, RoleOperator, "ops", time.Now())
	sess, _, _ := a.Issue("alice")
	var login, session time.Duration
	b.Run("login", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			if ok, _ := VerifyPassword(c.Hash, "alice's password"); !ok {
				b.Fatal("no")
			}
		}
		login = time.Since(start) / time.Duration(b.N)
	})
	b.Run("session", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			if _, err := a.Verify(sess); err != nil {
				b.Fatal(err)
			}
		}
		session = time.Since(start) / time.Duration(b.N)
	})
	b.Run("operator", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Verify(op); err != nil {
				b.Fatal(err)
			}
		}
	})
	if login > 0 && session > 0 {
		b.Logf("login %v, session check %v: one login costs %.0f session checks", login, session, float64(login)/float64(session))
	}
}
