// Package owner is the vehicle owner's HTTP API: a vehicle's latest
// position, its track between two times (downsampled in ClickHouse for long
// ranges), its daily usage reports, its condition (latest readings and fault
// codes) and its points (the owner account's balance and the vehicle's ledger
// entries with inclusion proofs). Answers come from ClickHouse; proofs from
// the ledger's reader and balances from settlement's state, both through
// small interfaces in Config. Every user value reaches ClickHouse as a bound
// query parameter; every query has a bounded range and a LIMIT.
//
// Every route requires a caller (services/auth): an owner is answered only
// about the vehicles bound to its account (403 for any other), an operator
// about every vehicle; no credentials is 401.
package owner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/pseudonym"
)

// Config configures the handler.
type Config struct {
	// Conn is the ClickHouse holding the tables of infra/clickhouse
	// (sink.Open gives one).
	Conn driver.Conn
	// Auth authenticates callers and says which vehicles are theirs
	// (required).
	Auth *auth.Authenticator
	// Proofs serves inclusion proofs for ledger entries (a proofs.Server,
	// or a proofs.Client). Nil: entries are listed without proofs.
	Proofs Proofs
	// Published and Policy, if both set, serve GET /v1/ledger/published:
	// the checkpoint published under the witness quorum with the policy
	// (published.go).
	Published Published
	Policy    *ledger.Policy
	// Balances gives the balance of the account a vehicle's points go to
	// (SettlementBalances). Nil: /points answers without a balance.
	Balances Balances
	// Pseudonyms opens the vehicle's pseudonym: the ledger's leaves name
	// it only so (docs/ledger.md, "Pseudonymous leaves"), and /points gives
	// the owner the opening to check their own credits. Nil: the ledger
	// entries are looked up under the vehicle id itself.
	Pseudonyms pseudonym.Resolver
	// Registerer receives the request latency histogram (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now): default ranges end at Now.
	Now func() time.Time

	// MaxTrackRange is the longest track range one request may ask for
	// (default 92 days).
	MaxTrackRange time.Duration
	// MaxReportDays is the longest report range in days (default 366).
	MaxReportDays int
	// ConditionWindow is how far back /condition looks for readings and
	// fault codes by default (default 30 days; ?days= up to 365).
	ConditionWindow time.Duration
	// QueryTimeout bounds each request's ClickHouse work (default 10 s).
	QueryTimeout time.Duration

	// View, if set, answers position, tracks and reports it covers from
	// memory (services/owner/view, fed by a Feed); the rest, and
	// everything until it has caught up, from ClickHouse, with the same
	// answers (docs/owner-api.md).
	View *view.View
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Conn == nil {
		return errors.New("owner: no ClickHouse connection")
	}
	if c.Auth == nil {
		return errors.New("owner: no authenticator")
	}
	if c.MaxTrackRange < 0 || c.MaxReportDays < 0 || c.ConditionWindow < 0 || c.QueryTimeout < 0 {
		return errors.New("owner: negative limit")
	}
	return nil
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxTrackRange == 0 {
		c.MaxTrackRange = 92 * 24 * time.Hour
	}
	if c.MaxReportDays == 0 {
		c.MaxReportDays = 366
	}
	if c.ConditionWindow == 0 {
		c.ConditionWindow = 30 * 24 * time.Hour
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 10 * time.Second
	}
}

// Limits of the query parameters.
const (
	DefaultMaxPoints = 1000  // track: points over the whole range
	MaxMaxPoints     = 10000 //
	DefaultPageSize  = 1000  // track: points per page
	MaxPageSize      = 10000 //
	DefaultReports   = 31    // reports per page
	MaxReports       = 366   //
	DefaultEntries   = 50    // ledger entries per page
	MaxEntries       = 500   //
	maxFaultCodes    = 200
)

type handler struct {
	cfg     Config
	mux     *auth.Mux
	latency *prometheus.HistogramVec
	viewReq *prometheus.CounterVec // nil without a view
}

// NewHandler returns the owner API:
//
//	GET /v1/vehicles/{vin}/position
//	GET /v1/vehicles/{vin}/track?from=RFC3339&to=RFC3339&max_points=N&limit=N&cursor=C
//	GET /v1/vehicles/{vin}/reports?from=YYYY-MM-DD&to=YYYY-MM-DD&limit=N&cursor=C
//	GET /v1/vehicles/{vin}/condition?days=N
//	GET /v1/vehicles/{vin}/points?limit=N&cursor=C
//	GET /v1/vehicles/{vin}/marks?from=RFC3339&to=RFC3339   (harsh events and speeding, marks.go)
//	GET /v1/fleet/scores?date=YYYY-MM-DD&limit=N   (operators only)
//	GET /v1/fleet/cells?date=YYYY-MM-DD            (operators only: coarse density cells, cells.go)
//	GET /v1/accounts/{owner}/entries?limit=N&cursor=C   (the account's debits, adjustments, transfers out)
//
// Every route admits owners (their own vehicles) and operators: 401
// without credentials, 403 for a vehicle not bound to the calling owner,
// 429 past the caller's rate. Answers are JSON; errors are {"error": "..."}
// with 400 for bad parameters, 404 for a vehicle minecart has no telemetry of, 500 for
// storage failures (logged, not shown). docs/analytics.md ("Owner API")
// describes each answer.
func NewHandler(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	h := &handler{cfg: cfg, mux: auth.NewMux(cfg.Auth)}
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "minecart_owner_request_seconds",
		Help:    "Owner API request latency, by endpoint and status code class.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"endpoint", "code"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.latency); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("owner metrics: %w", err)
			}
			h.latency = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	if cfg.View != nil {
		h.viewReq = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_owner_view_requests_total",
			Help: "Owner API requests the in-memory view could serve, by endpoint and result: hit (answered from the view), miss (outside it: ClickHouse answered), fallback (the view not caught up: ClickHouse answered).",
		}, []string{"endpoint", "result"})
		if cfg.Registerer != nil {
			if err := cfg.Registerer.Register(h.viewReq); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("owner metrics: %w", err)
				}
				h.viewReq = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	h.route("position", h.position)
	h.route("track", h.track)
	h.route("reports", h.reports)
	h.route("condition", h.condition)
	h.route("points", h.points)
	h.route("marks", h.marks)
	h.route("trips", h.trips)
	h.mux.HandleFunc("GET /v1/fleet/scores", operators, h.fleetScores)
	h.mux.HandleFunc("GET /v1/fleet/cells", operators, h.fleetCells)
	h.mux.HandleFunc("GET /v1/accounts/{owner}/entries", readers, h.accountEntries)
	h.mux.HandleFunc("GET /v1/ledger/published", readers, h.publishedCheckpoint)
	h.mux.HandleFunc("/v1/vehicles/", readers, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: want GET /v1/vehicles/{vin}/position, track, reports, condition, points, marks or trips")
	})
	return h.mux, nil
}

// apiError is an answer other than 200.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &apiError{code: http.StatusNotFound, msg: fmt.Sprintf(format, a...)}
}

type endpoint func(ctx context.Context, vin string, r *http.Request) (any, error)

// readers are the roles the owner API admits.
var readers = auth.Roles{auth.RoleOwner, auth.RoleOperator}

func (h *handler) route(name string, fn endpoint) {
	h.mux.HandleFunc("GET /v1/vehicles/{vin}/"+name, readers, func(w http.ResponseWriter, r *http.Request) {
		h.answer(w, r, name, func() int { return h.serve(w, r, name, fn) })
	})
}

// answer runs one request's handling (which returns the status it wrote)
// and observes its latency under name.
func (h *handler) answer(w http.ResponseWriter, r *http.Request, name string, handle func() int) {
	start := time.Now()
	code := handle()
	h.latency.WithLabelValues(name, strconv.Itoa(code/100)+"xx").Observe(time.Since(start).Seconds())
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, name string, fn endpoint) int {
	vin := r.PathValue("vin")
	if err := ids.Vehicle(vin); err != nil {
		return writeError(w, http.StatusBadRequest, "vehicle: "+err.Error())
	}
	if p, _ := auth.Caller(r.Context()); h.cfg.Auth.CanReadVehicle(p, vin) != nil {
		return writeError(w, http.StatusForbidden, "vehicle "+vin+" is not yours")
	}
	return h.respond(w, r, name, func(ctx context.Context) (any, error) { return fn(ctx, vin, r) }, "vehicle", vin)
}

// respond runs fn under the query timeout and writes its answer as JSON,
// or its error: an apiError as is, a timeout as 503, anything else as 500
// (logged with attrs). It returns the status written.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, name string, fn func(context.Context) (any, error), attrs ...any) int {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	out, err := fn(ctx)
	if err != nil {
		var ae *apiError
		attrs = append([]any{"endpoint", name, "err", err}, attrs...)
		switch {
		case errors.As(err, &ae):
			return writeError(w, ae.code, ae.msg)
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			h.cfg.Logger.Warn("owner query timed out", attrs...)
			return writeError(w, http.StatusServiceUnavailable, "query timed out")
		default:
			h.cfg.Logger.Error("owner query", attrs...)
			return writeError(w, http.StatusInternalServerError, "internal error")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := writeJSON(w, out); err != nil {
		h.cfg.Logger.Debug("owner answer not written", "endpoint", name, "err", err)
	}
	return http.StatusOK
}

func writeJSON(w http.ResponseWriter, v any) error {
	if a, ok := v.(jsonAppender); ok { // jsonenc.go: the same bytes, faster
		bp := jsonBufs.Get().(*[]byte)
		b, ok := a.appendJSON((*bp)[:0])
		if ok {
			b = append(b, '\n')
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(b)
			if cap(b) <= 4<<20 {
				*bp = b[:0]
				jsonBufs.Put(bp)
			}
			return err
		}
		jsonBufs.Put(bp)
	}
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	return code
}

// intParam parses an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badRequest("%s %q: not an integer", name, s)
	}
	if n < lo || n > hi {
		return 0, badRequest("%s %d: want %d to %d", name, n, lo, hi)
	}
	return n, nil
}
