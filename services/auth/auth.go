// Package auth authenticates and authorises the callers of minecart's
// HTTP APIs (the owner API and the redemption API): owners log in with a
// password (argon2id hash) and get a session (a signed JWT, as a bearer
// token and an HttpOnly SameSite=Strict cookie); operators and partners
// present bearer tokens whose SHA-256 is stored. Credentials live in the
// compacted topic pipelines.TopicCredentials (hashes only), so every
// replica rebuilds them from Kafka; which vehicle belongs to which owner
// comes from pipelines.TopicAccounts.
//
// Every route is declared on a Mux with the roles it admits: no
// credentials is 401, a role the route does not admit is 403, and each
// handler checks the object (CanReadVehicle, CanReadAccount, CanSpend):
// another owner's vehicle or account is 403. Each caller has a token
// bucket (429 with Retry-After); failed logins lock an owner id and a
// client address out for a doubling time. docs/security.md is the
// reference.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ids"
)

// CookieName is the session cookie.
const CookieName = "minecart_session"

// Issuer is the iss claim of session tokens.
const Issuer = "minecart"

// Leeway is the clock difference between replicas that session checks
// tolerate (on iat and exp).
const Leeway = 30 * time.Second

// MinSessionKey is the shortest session signing key, in bytes.
const MinSessionKey = 32

// Config configures an Authenticator.
type Config struct {
	// Credentials follows pipelines.TopicCredentials.
	Credentials Table
	// Bindings follows pipelines.TopicAccounts (vehicle -> owner); nil:
	// owners can read no vehicle.
	Bindings Table
	Serde    *schemas.Serde
	// SessionKey signs and verifies session tokens (HMAC-SHA256, at least
	// 32 bytes); every replica serving the same owners has the same key.
	SessionKey []byte
	// SessionTTL is a session's lifetime (default 12h).
	SessionTTL time.Duration
	// Rate is each caller's token bucket (default 20/s, burst 40).
	Rate Limit
	// LoginFree failed logins of an owner id or client address pass before
	// it is locked out for LoginBase, doubling with each further failure up
	// to LoginMax (defaults 5, 1s, 15m).
	LoginFree           int
	LoginBase, LoginMax time.Duration
	// MaxHashing is how many password hashes run at once (default 4;
	// argon2id takes 19 MiB each).
	MaxHashing int
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Validate reports a configuration the Authenticator cannot work with.
func (c Config) Validate() error {
	switch {
	case c.Credentials == nil:
		return errors.New("auth: no credentials table")
	case c.Serde == nil:
		return errors.New("auth: no serde")
	case len(c.SessionKey) < MinSessionKey:
		return fmt.Errorf("auth: session key of %d bytes, want at least %d", len(c.SessionKey), MinSessionKey)
	case c.SessionTTL < 0 || c.Rate.Rate < 0 || c.Rate.Burst < 0 || c.LoginFree < 0 || c.LoginBase < 0 || c.LoginMax < 0 || c.MaxHashing < 0:
		return errors.New("auth: negative limit")
	}
	return nil
}

// Authenticator authenticates requests and answers the login routes.
type Authenticator struct {
	cfg      Config
	limits   *buckets
	throttle *throttle
	hashing  chan struct{}
	outcomes *prometheus.CounterVec
	dummy    string // a hash verified for unknown owners, so they take as long
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Rate == (Limit{}) {
		cfg.Rate = Limit{Rate: 20, Burst: 40}
	}
	if cfg.LoginFree == 0 {
		cfg.LoginFree = 5
	}
	if cfg.LoginBase == 0 {
		cfg.LoginBase = time.Second
	}
	if cfg.LoginMax == 0 {
		cfg.LoginMax = 15 * time.Minute
	}
	if cfg.MaxHashing == 0 {
		cfg.MaxHashing = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dummy, err := HashPassword(NewSecret())
	if err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, limits: newBuckets(cfg.Rate, 100_000),
		throttle: newThrottle(cfg.LoginFree, cfg.LoginBase, cfg.LoginMax, 100_000),
		hashing:  make(chan struct{}, cfg.MaxHashing), dummy: dummy}
	a.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "minecart_auth_requests_total",
		Help: "API requests by authentication outcome: ok, unauthenticated, forbidden, limited, login_ok, login_failed, login_throttled.",
	}, []string{"outcome"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.outcomes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("auth metrics: %w", err)
			}
			a.outcomes = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return a, nil
}

// Principal is an authenticated caller.
type Principal struct {
	Role avro.Role
	ID   string // owner account, operator name or partner id
}

// Subject is the principal's credential key.
func (p Principal) Subject() string { return Subject(p.Role, p.ID) }

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// Caller is the principal a request was authenticated as (false on a
// public route).
func Caller(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// ErrForbidden is returned by the Can* checks: the caller is
// authenticated but the object is not theirs (403).
var ErrForbidden = errors.New("forbidden")

// CanReadAccount: an operator reads every account, an owner only its own.
func CanReadAccount(p Principal, owner string) error {
	if p.Role == RoleOperator || (p.Role == RoleOwner && p.ID == owner) {
		return nil
	}
	return fmt.Errorf("%w: account %s is not %s's", ErrForbidden, owner, p.Subject())
}

// CanSpend: only the owner of an account spends from it (not an operator).
func CanSpend(p Principal, owner string) error {
	if p.Role == RoleOwner && p.ID == owner {
		return nil
	}
	return fmt.Errorf("%w: %s may not spend from account %s", ErrForbidden, p.Subject(), owner)
}

// CanReadVehicle: an operator reads every vehicle, an owner the vehicles
// bound to its account now (pipelines.TopicAccounts).
func (a *Authenticator) CanReadVehicle(p Principal, vehicle string) error {
	if p.Role == RoleOperator {
		return nil
	}
	if p.Role == RoleOwner && a.cfg.Bindings != nil {
		if v, ok := a.cfg.Bindings.Get(vehicle); ok && v != nil {
			var b avro.AccountBinding
			if err := a.cfg.Serde.Unmarshal(v, &b); err == nil && b.Owner == p.ID {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: vehicle %s is not %s's", ErrForbidden, vehicle, p.Subject())
}

// claims of a session token.
type claims struct {
	jwt.RegisteredClaims
	Gen int64 `json:"gen"` // the credential's generation
}

// Issue returns a session token for owner, valid for SessionTTL while the
// owner's credential keeps the generation it has now.
func (a *Authenticator) Issue(owner string) (string, time.Time, error) {
	c, err := lookup(a.cfg.Credentials, a.cfg.Serde, Subject(RoleOwner, owner))
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.cfg.Now()
	exp := now.Add(a.cfg.SessionTTL)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: c.Subject, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp)},
		Gen: c.Generation,
	}).SignedString(a.cfg.SessionKey)
	return tok, exp, err
}

var errBadCredentials = errors.New("bad credentials")

// Authenticate checks a request's bearer token or session cookie.
// ok is false when it carries none.
func (a *Authenticator) Authenticate(r *http.Request) (p Principal, ok bool, err error) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return p, true, fmt.Errorf("%w: Authorization is not Bearer", errBadCredentials)
		}
		tok = strings.TrimSpace(t)
	} else if c, err := r.Cookie(CookieName); err == nil {
		tok = c.Value
	}
	if tok == "" {
		return p, false, nil
	}
	p, err = a.Verify(tok)
	return p, true, err
}

// Verify checks a bearer token: a session token or an operator's or
// partner's token.
func (a *Authenticator) Verify(tok string) (Principal, error) {
	if len(tok) > 4096 {
		return Principal{}, fmt.Errorf("%w: token of %d bytes", errBadCredentials, len(tok))
	}
	if role, rest, found := strings.Cut(tok, ":"); found {
		return a.checkToken(role, rest)
	}
	return a.checkSession(tok)
}

// checkToken checks an operator's or a partner's "<role>:<id>:<secret>".
func (a *Authenticator) checkToken(role, rest string) (Principal, error) {
	id, secret, found := strings.Cut(rest, ":")
	var p Principal
	switch role {
	case "operator":
		p.Role = RoleOperator
	case "partner":
		p.Role = RolePartner
	default:
		return p, fmt.Errorf("%w: token role %q", errBadCredentials, role)
	}
	if !found || checkID(p.Role, id) != nil {
		return p, fmt.Errorf("%w: malformed token", errBadCredentials)
	}
	p.ID = id
	c, err := lookup(a.cfg.Credentials, a.cfg.Serde, p.Subject())
	if err != nil || c.Role != p.Role || !verifySecret(c.Hash, secret) {
		return p, fmt.Errorf("%w: token of %s", errBadCredentials, p.Subject())
	}
	return p, nil
}

func (a *Authenticator) checkSession(tok string) (Principal, error) {
	var cl claims
	_, err := jwt.ParseWithClaims(tok, &cl, func(*jwt.Token) (any, error) { return a.cfg.SessionKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway), jwt.WithTimeFunc(a.cfg.Now))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: session: %w", errBadCredentials, err)
	}
	owner, found := strings.CutPrefix(cl.Subject, "owner/")
	if !found {
		return Principal{}, fmt.Errorf("%w: session subject %q", errBadCredentials, cl.Subject)
	}
	c, err := lookup(a.cfg.Credentials, a.cfg.Serde, cl.Subject)
	if err != nil || c.Generation != cl.Gen {
		return Principal{}, fmt.Errorf("%w: session of %s ended (password changed or removed)", errBadCredentials, cl.Subject)
	}
	return Principal{Role: RoleOwner, ID: owner}, nil
}

// Roles is a set of roles a route admits.
type Roles []avro.Role

func (rs Roles) has(r avro.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// Route is one declared route of a Mux.
type Route struct {
	Pattern string // net/http pattern, e.g. "GET /v1/vehicles/{vin}/position"
	Roles   Roles  // empty: public
}

// Mux is an http.ServeMux whose routes declare who may call them, so that
// tests can enumerate them (Routes) and check that each refuses the
// unauthenticated. It refuses cross-origin state-changing browser
// requests (http.CrossOriginProtection: a cookie never rides a forged
// form post).
type Mux struct {
	a       *Authenticator
	mux     *http.ServeMux
	routes  []Route
	mounted map[*Mux]bool
	h       http.Handler
}

// NewMux returns an empty Mux over a (nil: every route must be public).
func NewMux(a *Authenticator) *Mux {
	m := &Mux{a: a, mux: http.NewServeMux(), mounted: map[*Mux]bool{}}
	m.h = http.NewCrossOriginProtection().Handler(m.mux)
	return m
}

// Handle declares pattern for the roles (none: public).
func (m *Mux) Handle(pattern string, roles Roles, h http.Handler) {
	m.routes = append(m.routes, Route{Pattern: pattern, Roles: roles})
	if len(roles) == 0 {
		m.mux.Handle(pattern, h)
		return
	}
	if m.a == nil {
		panic("auth: route " + pattern + " admits roles but the Mux has no Authenticator")
	}
	m.mux.Handle(pattern, m.a.require(roles, h))
}

// HandleFunc is Handle for a function.
func (m *Mux) HandleFunc(pattern string, roles Roles, h http.HandlerFunc) {
	m.Handle(pattern, roles, h)
}

// Mount serves h under prefix (a pattern ending in "/") as it declares
// its own routes: the routes of h, if it is a Mux, are listed by Routes.
func (m *Mux) Mount(prefix string, h http.Handler) {
	if sub, ok := h.(*Mux); ok {
		if !m.mounted[sub] {
			m.mounted[sub] = true
			m.routes = append(m.routes, sub.routes...)
		}
	} else {
		m.routes = append(m.routes, Route{Pattern: prefix})
	}
	m.mux.Handle(prefix, h)
}

// Routes lists the declared routes (with those of mounted Muxes).
func (m *Mux) Routes() []Route { return append([]Route(nil), m.routes...) }

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.h.ServeHTTP(w, r) }

// require authenticates, rate-limits and checks the role.
func (a *Authenticator) require(roles Roles, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := a.Authenticate(r)
		if !ok || err != nil {
			a.outcomes.WithLabelValues("unauthenticated").Inc()
			if err != nil {
				a.cfg.Logger.Debug("auth: refused", "path", r.URL.Path, "err", err)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="minecart"`)
			WriteError(w, http.StatusUnauthorized, "authentication required: log in (POST /v1/login) or send a bearer token")
			return
		}
		if allowed, wait := a.limits.allow(p.Subject(), a.cfg.Now()); !allowed {
			a.outcomes.WithLabelValues("limited").Inc()
			tooMany(w, wait, "rate limit of "+p.Subject())
			return
		}
		if !roles.has(p.Role) {
			a.outcomes.WithLabelValues("forbidden").Inc()
			WriteError(w, http.StatusForbidden, fmt.Sprintf("%s may not call %s", p.Subject(), r.URL.Path))
			return
		}
		a.outcomes.WithLabelValues("ok").Inc()
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// Forbidden answers 403 for an ErrForbidden from a Can* check.
func (a *Authenticator) Forbidden(w http.ResponseWriter, err error) {
	a.outcomes.WithLabelValues("forbidden").Inc()
	WriteError(w, http.StatusForbidden, err.Error())
}

func tooMany(w http.ResponseWriter, wait time.Duration, what string) {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("%s: retry after %d s", what, secs))
}

// WriteError writes {"error": msg} with code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// DecodeJSON decodes exactly one JSON object of at most max bytes into v:
// unknown fields, trailing data and a Content-Type other than
// application/json are refused.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return fmt.Errorf("Content-Type %q: want application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("body: trailing data after the JSON object")
	}
	return nil
}

// LoginBody is the JSON body of POST /v1/login.
type LoginBody struct {
	Owner    string `json:"owner"`
	Password string `json:"password"`
}

// Session is the answer of POST /v1/login and GET /v1/whoami.
type Session struct {
	Role      avro.Role  `json:"role"`
	ID        string     `json:"id"`
	Token     string     `json:"token,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Mount declares the session routes on m:
//
//	POST /v1/login   {"owner", "password"} -> a session (token and cookie)
//	POST /v1/logout  clears the cookie
//	GET  /v1/whoami  the caller
func (a *Authenticator) Mount(m *Mux) {
	m.HandleFunc("POST /v1/login", nil, a.login)
	m.HandleFunc("POST /v1/logout", nil, a.logout)
	m.HandleFunc("GET /v1/whoami", Roles{RoleOwner, RoleOperator, RolePartner}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := Caller(r.Context())
		writeJSON(w, http.StatusOK, Session{Role: p.Role, ID: p.ID})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (a *Authenticator) login(w http.ResponseWriter, r *http.Request) {
	var body LoginBody
	if err := DecodeJSON(w, r, 4096, &body); err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ids.Owner(body.Owner) != nil || body.Password == "" || len(body.Password) > MaxPassword {
		WriteError(w, http.StatusBadRequest, "owner (a valid owner id) and password (1 to 256 bytes) are required")
		return
	}
	now := a.cfg.Now()
	ownerKey, addrKey := "owner/"+body.Owner, "addr/"+clientAddr(r)
	if d := max(a.throttle.locked(ownerKey, now), a.throttle.locked(addrKey, now)); d > 0 {
		a.outcomes.WithLabelValues("login_throttled").Inc()
		tooMany(w, d, "too many failed logins")
		return
	}
	select {
	case a.hashing <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	ok := false
	c, err := lookup(a.cfg.Credentials, a.cfg.Serde, Subject(RoleOwner, body.Owner))
	if err == nil && c.Role == RoleOwner {
		ok, err = VerifyPassword(c.Hash, body.Password)
	} else {
		_, _ = VerifyPassword(a.dummy, body.Password) // as long as a real check
	}
	<-a.hashing
	if err != nil && !errors.Is(err, errNoCredential) {
		a.cfg.Logger.Warn("auth: credential unusable", "owner", body.Owner, "err", err)
	}
	if !ok {
		a.throttle.fail(ownerKey, now)
		a.throttle.fail(addrKey, now)
		a.outcomes.WithLabelValues("login_failed").Inc()
		WriteError(w, http.StatusUnauthorized, "wrong owner or password")
		return
	}
	a.throttle.clear(ownerKey)
	tok, exp, err := a.Issue(body.Owner)
	if err != nil {
		a.cfg.Logger.Error("auth: issue session", "owner", body.Owner, "err", err)
		WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}
	a.outcomes.WithLabelValues("login_ok").Inc()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, Session{Role: RoleOwner, ID: body.Owner, Token: tok, ExpiresAt: &exp})
}

func (a *Authenticator) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
