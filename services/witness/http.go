package witness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxBody bounds an add-checkpoint body: 63 proof lines (~2.8 KiB) and a
// checkpoint with its signatures fit many times over.
const MaxBody = 64 << 10

// Handler serves the tlog-witness API (the submission and monitoring
// prefixes are both the root):
//
//	POST /add-checkpoint              the request body of ParseRequest; 200 with the cosignature line
//	                                  (text/plain; charset=utf-8), 400/403/404/409/422 with a message,
//	                                  409 with the cosigned size ("<size>\n", text/x.tlog.size),
//	                                  413 for a body over MaxBody
//	GET  /<sha256(origin) hex>/checkpoint  the last cosigned checkpoint: the log's signatures and the witness's
//
// In mirror mode (Config.Mirror) also the mirror's copy of the log as
// C2SP tlog-tiles (mirror.go):
//
//	GET /ledger/checkpoint                 the mirror checkpoint: the log's signature and the mirror key's cosignature
//	GET /ledger/tile/<L>/<N>[.p/<W>]       tiles, as the log serves them
//	GET /ledger/tile/entries/<N>[.p/<W>]   entry bundles
//
// Only the log's signature on the checkpoint is trusted; callers are not
// authenticated.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAdd)
	mux.HandleFunc("GET /{hash}/checkpoint", w.serveCheckpoint)
	if w.mirror != nil {
		mux.HandleFunc("GET /ledger/checkpoint", w.mirror.serveCheckpoint)
		mux.HandleFunc("GET /ledger/tile/{path...}", w.mirror.serveTile)
	}
	return mux
}

func (w *Witness) serveAdd(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(rw, fmt.Sprintf("body over %d bytes", MaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	sig, err := w.AddCheckpoint(body)
	var e *Error
	switch {
	case err == nil:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write(sig)
	case errors.As(err, &e) && e.Code == http.StatusConflict:
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		_, _ = rw.Write([]byte(strconv.FormatUint(e.Size, 10) + "\n"))
	case errors.As(err, &e):
		http.Error(rw, e.Msg, e.Code)
	default:
		w.cfg.Logger.Error("witness: add-checkpoint failed", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	}
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	want := r.PathValue("hash")
	for origin := range w.logs {
		sum := sha256.Sum256([]byte(origin))
		if hex.EncodeToString(sum[:]) != want {
			continue
		}
		if st := w.State(origin); st != nil {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = rw.Write([]byte(st.Checkpoint + st.Cosignature))
			return
		}
	}
	http.Error(rw, "no checkpoint cosigned for that origin", http.StatusNotFound)
}

func marshalState(st *LogState) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	return append(b, '\n'), nil
}
