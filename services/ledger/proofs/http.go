package proofs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/minecart/minecart/services/ledger"
)

// Handler serves:
//
//	GET /v1/ledger/head
//	GET /v1/ledger/entries/{id}/proof?tree_size=N   (id: entry id, URL-escaped, or leaf index)
//	GET /v1/ledger/leaves/{index}/proof?tree_size=N (the leaf index only: Client.InclusionProof)
//	GET /v1/ledger/consistency?first=M&second=N     (second: default the head's size)
//	GET /v1/ledger/blocks?before=H&limit=N          (explorer.go: headers, newest first)
//	GET /v1/ledger/blocks/{height}                  (a block with its entries)
//	GET /v1/ledger/leaves/{index}                   (an entry, decoded)
//
// as JSON, and the book as C2SP tlog-tiles (tiles.go):
//
//	GET /ledger/checkpoint
//	GET /ledger/policy                              (the witness policy's bytes, text/plain; 404 without one)
//	GET /ledger/tile/<L>/<N>[.p/<W>]
//	GET /ledger/tile/entries/<N>[.p/<W>]
//
// For the JSON endpoints, bad parameters get 400, unknown entries and sizes beyond the
// head 404, with {"error": "..."}.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ledger/head", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.Head(r.Context()))
	})
	mux.HandleFunc("GET /v1/ledger/entries/{rest...}", s.serveProof)
	mux.HandleFunc("GET /v1/ledger/leaves/{index}/proof", s.serveLeafProof)
	mux.HandleFunc("GET /v1/ledger/consistency", s.serveConsistency)
	mux.HandleFunc("GET /v1/ledger/blocks", s.serveBlocks)
	mux.HandleFunc("GET /v1/ledger/blocks/{height}", s.serveBlock)
	mux.HandleFunc("GET /v1/ledger/leaves/{index}", s.serveLeaf)
	mux.HandleFunc("GET /v1/ledger/campaigns", s.serveCampaigns)
	mux.HandleFunc("GET /ledger/checkpoint", s.serveCheckpoint)
	mux.HandleFunc("GET /ledger/policy", s.servePolicy)
	mux.HandleFunc("GET /ledger/tile/{path...}", s.serveTile)
	return mux
}

func (s *Server) serveProof(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("rest"), "/proof")
	if !ok || id == "" {
		httpError(w, http.StatusNotFound, "want /v1/ledger/entries/{id}/proof")
		return
	}
	size, sized, ok := treeSize(w, r)
	if !ok {
		return
	}
	reply(w)(s.entryProof(id, size, sized))
}

func (s *Server) serveLeafProof(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("index")
	index, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "leaf index %q: not a number", v)
		return
	}
	size, sized, ok := treeSize(w, r)
	if !ok {
		return
	}
	reply(w)(s.leafProof(index, size, sized))
}

// treeSize parses the optional tree_size parameter (sized: it was given);
// on a malformed one it answers 400 and returns !ok.
func treeSize(w http.ResponseWriter, r *http.Request) (size uint64, sized, ok bool) {
	q := r.URL.Query().Get("tree_size")
	if q == "" {
		return 0, false, true
	}
	n, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "tree_size %q: not a number", q)
		return 0, false, false
	}
	return n, true, true
}

func (s *Server) serveConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	parse := func(name string) (uint64, bool) {
		v := q.Get(name)
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "%s %q: not a number", name, v)
			return 0, false
		}
		return n, true
	}
	if q.Get("first") == "" {
		httpError(w, http.StatusBadRequest, "first: required")
		return
	}
	first, ok := parse("first")
	if !ok {
		return
	}
	second := s.size()
	if q.Get("second") != "" {
		if second, ok = parse("second"); !ok {
			return
		}
	}
	reply(w)(s.ConsistencyProof(r.Context(), first, second))
}

// reply writes v as JSON, or err with its status.
func reply(w http.ResponseWriter) func(v any, err error) {
	return func(v any, err error) {
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			httpError(w, http.StatusNotFound, "%v", err)
		case err != nil:
			httpError(w, http.StatusBadRequest, "%v", err)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, a...)})
}

// servePolicy answers the witness policy file as parsed (the bytes the
// ledger holds /ledger/checkpoint's quorum to), so a client such as the
// owner's browser can check the cosignatures itself; 404 without a policy.
func (s *Server) servePolicy(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Policy == nil {
		httpError(w, http.StatusNotFound, "no witness policy")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.cfg.Policy.Text())
}
