// Package web serves minecart's three web faces from the binary: the owner
// app at /, the block explorer at /explorer and the operator console at
// /console, with their static assets under /assets/ (embedded: templates,
// vanilla JS modules, CSS and the vendored front-end files of vendor.sh).
// The pages are html/template shells; the JS modules call the JSON APIs
// (services/owner, services/ledger/proofs, services/settlement/api and the
// few routes this package adds) and check every ledger proof in the
// browser. No inline script or style: every page carries a strict
// Content-Security-Policy. docs/web.md is the reference.
package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/auth"
)

//go:embed assets templates
var files embed.FS

// CSP is the Content-Security-Policy of every page and asset: scripts,
// styles, images and API calls from this origin only, no inline script or
// style element or attribute, no plugin, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// AssetCache is the Cache-Control of /assets/: the files change only with
// the binary, and each page names them with the binary's asset version
// (?v=), so a browser keeps them for a year.
const AssetCache = "public, max-age=31536000, immutable"

// Mounts are the patterns under which a server mounts the faces' Mux
// (auth.Mux.Mount) next to the other APIs.
var Mounts = []string{"GET /{$}", "GET /explorer", "GET /console", "GET /assets/", "/v1/me/", "/v1/catalog", "/v1/console/"}

// CatalogItem is one item of a partner's catalogue (GET /v1/catalog).
type CatalogItem struct {
	Partner     string `json:"partner"`
	ItemID      string `json:"item_id"`
	Title       string `json:"title"`
	PricePoints int64  `json:"price_points"`
	// Left is the units still for sale (-1: unlimited).
	Left int64 `json:"left"`
}

// Config configures the faces.
type Config struct {
	// Auth authenticates the callers of the JSON routes (required).
	Auth *auth.Authenticator
	// LedgerKey and Origin name the ledger's checkpoint signer: the pages
	// hand its signed-note verifier key to the browser, which checks
	// every checkpoint with it (and pins it on first use).
	LedgerKey ed25519.PublicKey
	Origin    string // default "minecart/ledger"
	// Vehicles lists the vehicles bound to an owner now (required).
	Vehicles func(owner string) []string
	// Catalog lists the partners' active catalogue items (nil: none).
	Catalog func() ([]CatalogItem, error)
	// Metrics is what the console reads (the process's registry); nil: the
	// console's pipeline panel is empty.
	Metrics prometheus.Gatherer
	// DeadLetters samples the dead-letter topic for the console (operators
	// only; DeadLetterTail); nil: the console shows counts only.
	DeadLetters func(ctx context.Context) (DeadLetters, error)
	// Transfers says the transfer API (POST /v1/transfers) is served: the
	// owner app shows its form only then.
	Transfers bool
	// Version names the assets in URLs (?v=) so a new binary's assets
	// are fetched again despite the long cache (default "dev").
	Version string
	Logger  *slog.Logger
}

// Validate reports a configuration the faces cannot work with.
func (c Config) Validate() error {
	switch {
	case c.Auth == nil:
		return errors.New("web: no authenticator")
	case len(c.LedgerKey) != ed25519.PublicKeySize:
		return errors.New("web: no ledger public key")
	case c.Vehicles == nil:
		return errors.New("web: no vehicles lookup")
	}
	return nil
}

type handler struct {
	cfg   Config
	vkey  string
	pages *template.Template
}

// NewHandler returns the faces as an *auth.Mux:
//
//	GET /{$}, /explorer, /console     the pages (public: each asks for what it needs)
//	GET /assets/...                   embedded static files (long cache)
//	GET /v1/me/vehicles               the caller's vehicles (owners; operators get [])
//	GET /v1/catalog                   the partners' catalogue (owners, operators)
//	GET /v1/console/metrics           the pipeline's metrics as JSON (operators)
//	GET /v1/console/deadletters       a sample of the dead letters per reason (operators)
func NewHandler(cfg Config) (*auth.Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Origin == "" {
		cfg.Origin = "minecart/ledger"
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	vkey, err := note.NewEd25519VerifierKey(cfg.Origin, cfg.LedgerKey)
	if err == nil {
		_, err = note.NewVerifier(vkey) // checks the key name (the origin)
	}
	if err != nil {
		return nil, fmt.Errorf("web: ledger verifier key: %w", err)
	}
	pages, err := template.ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	h := &handler{cfg: cfg, vkey: vkey, pages: pages}
	assets, _ := fs.Sub(files, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	gz, err := gzipAssets(assets)
	if err != nil {
		return nil, fmt.Errorf("web: assets: %w", err)
	}
	m := auth.NewMux(cfg.Auth)
	m.HandleFunc("GET /{$}", nil, h.page("owner.html", "minecart", "owner"))
	m.HandleFunc("GET /explorer", nil, h.page("explorer.html", "minecart block explorer", "explorer"))
	m.HandleFunc("GET /console", nil, h.page("console.html", "minecart console", "console"))
	m.Handle("GET /assets/", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", AssetCache)
		ct := mime.TypeByExtension(path.Ext(r.URL.Path))
		if strings.HasSuffix(r.URL.Path, ".geojson") {
			ct = "application/geo+json"
		}
		w.Header().Set("Vary", "Accept-Encoding")
		if z, ok := gz[strings.TrimPrefix(r.URL.Path, "/assets/")]; ok && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(z)))
			if r.Method != http.MethodHead {
				_, _ = w.Write(z)
			}
			return
		}
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		static.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /v1/me/vehicles", auth.Roles{auth.RoleOwner, auth.RoleOperator}, h.vehicles)
	m.HandleFunc("GET /v1/catalog", auth.Roles{auth.RoleOwner, auth.RoleOperator}, h.catalog)
	m.HandleFunc("GET /v1/console/metrics", auth.Roles{auth.RoleOperator}, h.metrics)
	m.HandleFunc("GET /v1/console/deadletters", auth.Roles{auth.RoleOperator}, h.deadLetters)
	return m, nil
}

// gzipAssets compresses every text asset of more than 1 KiB once, at
// start (about 600 KB in, 170 KB out): the vendored files dominate a first
// visit.
func gzipAssets(assets fs.FS) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch path.Ext(p) {
		case ".js", ".css", ".geojson", ".json", ".svg":
		default:
			return nil
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil || len(b) <= 1024 {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(b); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		out[p] = buf.Bytes()
		return nil
	})
	return out, err
}

// acceptsGzip reports whether an Accept-Encoding admits gzip.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

// secure sets the headers every answer of the faces carries.
func secure(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// pageData is what the templates get.
type pageData struct {
	Title, Face, Version, VerifierKey string
	Transfers                         bool
}

func (h *handler) page(name, title, face string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := h.pages.ExecuteTemplate(w, name, pageData{Title: title, Face: face, Version: h.cfg.Version,
			VerifierKey: h.vkey, Transfers: h.cfg.Transfers}); err != nil {
			h.cfg.Logger.Warn("web: page not written", "page", name, "err", err)
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// Vehicles is the answer of GET /v1/me/vehicles.
type Vehicles struct {
	Owner    string   `json:"owner,omitempty"`
	Vehicles []string `json:"vehicles"`
}

func (h *handler) vehicles(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.Caller(r.Context())
	out := Vehicles{Vehicles: []string{}}
	if p.Role == auth.RoleOwner {
		out.Owner = p.ID
		out.Vehicles = append(out.Vehicles, h.cfg.Vehicles(p.ID)...)
		sort.Strings(out.Vehicles)
	}
	writeJSON(w, out)
}

func (h *handler) catalog(w http.ResponseWriter, _ *http.Request) {
	items := []CatalogItem{}
	if h.cfg.Catalog != nil {
		got, err := h.cfg.Catalog()
		if err != nil {
			h.cfg.Logger.Error("web: catalogue", "err", err)
			auth.WriteError(w, http.StatusInternalServerError, "internal error")
			return
		}
		items = append(items, got...)
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Partner != items[j].Partner {
			return items[i].Partner < items[j].Partner
		}
		return items[i].PricePoints < items[j].PricePoints
	})
	writeJSON(w, map[string]any{"items": items})
}

// Sample is one series of a metric in GET /v1/console/metrics.
// A histogram's Value is its observation count, Sum their sum.
type Sample struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
	Sum    *float64          `json:"sum,omitempty"`
}

// consoleMetrics are the metric families the console shows.
var consoleMetrics = map[string]bool{
	"minecart_pipeline_records_in_total":   true,
	"minecart_pipeline_records_out_total":  true,
	"minecart_pipeline_records_dead_total": true,
	"minecart_pipeline_consumer_lag":       true,
	"minecart_scoring_late_events_total":   true,
	"minecart_scoring_flags_total":         true,
	"minecart_sink_inserted_rows_total":    true,
	"minecart_gateway_events_total":        true,
	"minecart_gateway_rejects_total":       true,
	"minecart_ledger_tree_size":            true,
	"minecart_ledger_bad_blocks_total":     true,
	// The ledger's publisher: witness cosignatures and the quorum.
	"minecart_ledger_published_tree_size":          true,
	"minecart_ledger_unpublished_entries":          true,
	"minecart_ledger_quorum_pending_since_seconds": true,
	"minecart_ledger_cosign_refusals_total":        true,
	"minecart_ledger_cosign_seconds":               true,
	"minecart_settlement_redemptions_total":        true,
	"minecart_settlement_points_outstanding":       true,
}

// IsConsoleMetric reports whether the console shows the metric family
// (and also any minecart_witness_* family).
func IsConsoleMetric(name string) bool {
	return consoleMetrics[name] || strings.HasPrefix(name, "minecart_witness_")
}

func (h *handler) metrics(w http.ResponseWriter, _ *http.Request) {
	out := map[string][]Sample{}
	if h.cfg.Metrics != nil {
		mfs, err := h.cfg.Metrics.Gather()
		if err != nil {
			h.cfg.Logger.Warn("web: gather metrics", "err", err)
		}
		for _, mf := range mfs {
			if !IsConsoleMetric(mf.GetName()) {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[mf.GetName()] = append(out[mf.GetName()], sample(m))
			}
		}
	}
	writeJSON(w, map[string]any{"metrics": out})
}

func sample(m *dto.Metric) Sample {
	s := Sample{}
	if len(m.GetLabel()) > 0 {
		s.Labels = map[string]string{}
		for _, l := range m.GetLabel() {
			s.Labels[l.GetName()] = l.GetValue()
		}
	}
	switch {
	case m.GetCounter() != nil:
		s.Value = m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		s.Value = m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		s.Value = m.GetUntyped().GetValue()
	case m.GetHistogram() != nil:
		sum := m.GetHistogram().GetSampleSum()
		s.Value, s.Sum = float64(m.GetHistogram().GetSampleCount()), &sum
	}
	return s
}
