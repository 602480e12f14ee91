package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	tlog "github.com/transparency-dev/formats/log"
	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// MaxProofLines is the most consistency proof lines a request may carry
// (tlog-witness: a client MUST NOT send more than 63).
const MaxProofLines = 63

// Request is a parsed add-checkpoint request body.
type Request struct {
	OldSize    uint64
	Proof      [][]byte // 32 bytes each
	Checkpoint []byte   // the signed note, as sent
}

// Error is a refused request: its HTTP status, what was wrong and, for a
// 409, the size of the last cosigned checkpoint.
type Error struct {
	Code int
	Size uint64
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

func fail(code int, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// ParseRequest parses an add-checkpoint body: "old <size>\n", zero to 63
// lines of one base64 hash each, an empty line, then the checkpoint. Every
// line ends in "\n"; sizes are decimal without leading zeroes; hashes are
// 32 bytes in strict standard base64. Any other body is a 400 *Error.
func ParseRequest(body []byte) (*Request, error) {
	i := bytes.Index(body, []byte("\n\n"))
	if i < 0 {
		return nil, fail(http.StatusBadRequest, "no empty line before the checkpoint")
	}
	lines := strings.Split(string(body[:i]), "\n")
	old, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return nil, fail(http.StatusBadRequest, "first line %q: want \"old <size>\"", lines[0])
	}
	size, err := strconv.ParseUint(old, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != old {
		return nil, fail(http.StatusBadRequest, "old size %q: want a decimal without leading zeroes", old)
	}
	req := &Request{OldSize: size, Checkpoint: body[i+2:]}
	if len(lines)-1 > MaxProofLines {
		return nil, fail(http.StatusBadRequest, "%d consistency proof lines: at most %d", len(lines)-1, MaxProofLines)
	}
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != 32 {
			return nil, fail(http.StatusBadRequest, "consistency proof line %q: want a 32-byte hash in base64", l)
		}
		req.Proof = append(req.Proof, h)
	}
	if len(req.Checkpoint) == 0 {
		return nil, fail(http.StatusBadRequest, "no checkpoint")
	}
	return req, nil
}

// AddCheckpoint checks a request and, if the checkpoint is signed by the
// log of its origin and extends the last checkpoint cosigned for that
// origin, stores it (durably) and returns the witness's cosignature line
// ("— <name> <base64(key id || timestamp || signature)>\n"). A refusal is
// an *Error with the tlog-witness status: 400 malformed, 404 unknown
// origin, 403 no valid signature by the log's key, 409 old size is not the
// cosigned size (Error.Size), 422 the checkpoint does not extend it.
func (w *Witness) AddCheckpoint(body []byte) ([]byte, error) {
	start := time.Now()
	sig, err := w.add(body)
	code := http.StatusOK
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
	} else if err != nil {
		code = http.StatusInternalServerError
	}
	w.results.WithLabelValues(strconv.Itoa(code)).Inc()
	w.latency.Observe(time.Since(start).Seconds())
	return sig, err
}

func (w *Witness) add(body []byte) ([]byte, error) {
	req, err := ParseRequest(body)
	if err != nil {
		return nil, err
	}
	origin, _, _ := strings.Cut(string(req.Checkpoint), "\n")
	verifiers, known := w.logs[origin]
	if !known {
		return nil, fail(http.StatusNotFound, "unknown log origin %q", origin)
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(verifiers...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fail(http.StatusForbidden, "checkpoint of %q: %v", origin, err)
		}
		return nil, fail(http.StatusBadRequest, "checkpoint: %v", err)
	}
	var cp tlog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || len(cp.Hash) != 32 || cp.Origin != origin {
		return nil, fail(http.StatusBadRequest, "checkpoint body %q: not a tlog-checkpoint with a 32-byte root", n.Text)
	}
	if req.OldSize > cp.Size {
		return nil, fail(http.StatusBadRequest, "old size %d > checkpoint size %d", req.OldSize, cp.Size)
	}

	w.mu.Lock() // check, store and sign as one step
	defer w.mu.Unlock()
	cur := w.state[origin]
	var curSize uint64
	var curRoot []byte
	if cur != nil {
		curSize, curRoot = cur.Size, cur.Root
	}
	if cur != nil && cp.Size == curSize && !bytes.Equal(cp.Hash, curRoot) {
		w.writeEvidence(origin, "same-size-other-root", n.Text, cur, body) // a split view, whatever the old size says
		if req.OldSize == curSize {
			return nil, fail(http.StatusUnprocessableEntity, "checkpoint of size %d has another root than the one cosigned", cp.Size)
		}
	}
	if req.OldSize != curSize {
		return nil, &Error{Code: http.StatusConflict, Size: curSize, Msg: fmt.Sprintf("old size %d, cosigned size %d", req.OldSize, curSize)}
	}
	if cp.Size == 0 && !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return nil, fail(http.StatusUnprocessableEntity, "checkpoint of size 0 without the empty tree's root")
	}
	if req.OldSize == 0 && len(req.Proof) > 0 {
		return nil, fail(http.StatusUnprocessableEntity, "old size 0 takes no consistency proof")
	}
	if req.OldSize == cp.Size && len(req.Proof) > 0 {
		return nil, fail(http.StatusUnprocessableEntity, "the same size takes no consistency proof")
	}
	if req.OldSize > 0 {
		if err := tdproof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, curRoot, cp.Hash); err != nil {
			w.writeEvidence(origin, "inconsistent", n.Text, cur, body)
			return nil, fail(http.StatusUnprocessableEntity, "consistency %d -> %d: %v", req.OldSize, cp.Size, err)
		}
	}

	// Sign, store, then answer: the cosigned note keeps the log's verified
	// signatures and ours (the monitoring GET serves it).
	cosigned, err := note.Sign(n, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	sigs := cosigned[bytes.LastIndex(cosigned[:len(cosigned)-1], []byte("\n"))+1:]
	next := &LogState{Origin: origin, Size: cp.Size, Root: cp.Hash, Checkpoint: string(cosigned[:len(cosigned)-len(sigs)]),
		Cosignature: string(sigs), UpdatedMs: w.cfg.Now().UnixMilli()}
	data, err := marshalState(next)
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(w.statePath(origin), data, 0o600); err != nil {
		return nil, fmt.Errorf("witness: store state: %w", err)
	}
	w.state[origin] = next
	if w.mirror != nil {
		w.mirror.wake()
	}
	return sigs, nil
}
