// Package witness is a C2SP tlog-witness (c2sp.org/tlog-witness): it
// cosigns a log's checkpoints after checking that each one extends the
// last one it cosigned (a consistency proof), so that a log cannot show
// two different histories to two parties without one of them noticing.
// It trusts nobody but the log keys it is configured with: a request is
// only as good as the log's signature on its checkpoint and the proof
// that comes with it.
//
// State, per log origin, is the last cosigned checkpoint, stored
// atomically and durably (temporary file, fsync, rename, fsync of the
// directory) before the cosignature is returned. A checkpoint signed by
// the log that contradicts it (same size, another root; or a consistency
// proof that does not verify) is refused and kept as an evidence file.
// Cosignatures are tlog-cosignature v1 Ed25519 (key type 0x04), made by
// github.com/transparency-dev/formats/note with the witness's own key,
// generated in its state directory on first start (mode 0600).
package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/pipelines/prom"
)

// Config configures a Witness.
type Config struct {
	// Dir is the state directory: the key (witness.key, 0600; its
	// verifier key in witness.vkey), the state of each log
	// (logs/<sha256(origin) hex>.json) and evidence files (evidence/).
	Dir string
	// Name is the witness's key name (a schema-less URL such as
	// "witness.example/w1"); it is fixed by the key file once created.
	Name string
	// Logs are the verifier keys of the logs it witnesses, as signed-note
	// verifier key text ("<origin>+<key id hex>+<base64(0x01 || key)>":
	// `minecart ledger pubkey`). The key name is the log's origin.
	Logs []string
	// Registerer receives the metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock of the state's timestamps (nil: time.Now); the
	// cosignature's timestamp is formats/note's (time.Now).
	Now func() time.Time
	// Mirror, if set, is the URL of the log's C2SP tlog-tiles prefix
	// (e.g. http://ledger:8080/ledger): mirror mode (mirror.go). The
	// witness then also fetches, verifies and stores every tile and entry
	// bundle up to each checkpoint it cosigns, serves the copy under its
	// own /ledger/ and cosigns it with a separate mirror key. Mirror mode
	// takes exactly one log.
	Mirror string
	// MirrorName is the mirror key's name on first start (default
	// "<Name>/mirror"); then fixed by mirror.key.
	MirrorName string
	// KeyFile and MirrorKeyFile, if set, are where the witness key and
	// the mirror key are read from (a mounted Kubernetes Secret, say)
	// instead of Dir; such a file must exist (nothing is created) and
	// hold the signer key text of `<Dir>/witness.key` (`PRIVATE+KEY+...`).
	KeyFile, MirrorKeyFile string
	// MirrorClient fetches the tiles (default a client with a 30s
	// timeout per request).
	MirrorClient *http.Client
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("witness: no state directory")
	}
	if len(c.Logs) == 0 {
		return errors.New("witness: no log key")
	}
	if c.Mirror != "" && len(c.Logs) != 1 {
		return errors.New("witness: mirror mode takes exactly one log")
	}
	return nil
}

// Witness checks and cosigns checkpoints (AddCheckpoint, Handler).
type Witness struct {
	cfg     Config
	signer  note.Signer
	vkey    string
	logs    map[string][]note.Verifier // origin -> its keys
	mu      sync.Mutex                 // serialises check + store + sign (the spec's rollback race)
	state   map[string]*LogState
	latency prometheus.Histogram
	results *prometheus.CounterVec
	mirror  *Mirror // mirror mode, else nil
}

// LogState is what the witness keeps per log: the last checkpoint it
// cosigned, as the log signed it, and its cosignature line.
type LogState struct {
	Origin      string `json:"origin"`
	Size        uint64 `json:"size"`
	Root        []byte `json:"root"`       // base64 in JSON
	Checkpoint  string `json:"checkpoint"` // the note as submitted (log signatures)
	Cosignature string `json:"cosignature"`
	UpdatedMs   int64  `json:"updated_ms"`
}

// New loads or creates the witness key and loads the state of every
// configured log.
func New(cfg Config) (*Witness, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Witness{cfg: cfg, logs: map[string][]note.Verifier{}, state: map[string]*LogState{}}
	for _, k := range cfg.Logs {
		v, err := note.NewVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("witness: log key %q: %w", k, err)
		}
		w.logs[v.Name()] = append(w.logs[v.Name()], v)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "logs"), filepath.Join(cfg.Dir, "evidence")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("witness: %w", err)
		}
	}
	skey, err := loadKey(cfg.KeyFile, cfg.Dir, keyFile, cfg.Name)
	if err != nil {
		return nil, err
	}
	s, err := tdnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	w.signer = s
	w.vkey, err = vkeyOf(skey)
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" && cfg.Name != s.Name() {
		return nil, fmt.Errorf("witness: name %q, but the key in %s is named %q", cfg.Name, cfg.Dir, s.Name())
	}
	for origin := range w.logs {
		st, err := readState(w.statePath(origin))
		if err != nil {
			return nil, err
		}
		if st != nil {
			if st.Origin != origin {
				return nil, fmt.Errorf("witness: state of %q holds origin %q", origin, st.Origin)
			}
			w.state[origin] = st
		}
	}
	m := prom.NewMetrics(cfg.Registerer)
	w.latency = m.Histogram("minecart_witness_add_checkpoint_seconds", "Time to check, store and cosign an add-checkpoint request.",
		[]float64{.0005, .001, .002, .005, .01, .02, .05, .1, .5})
	w.results = m.CounterVec("minecart_witness_requests_total", "add-checkpoint requests by HTTP status.", "code")
	if cfg.Mirror != "" {
		if w.mirror, err = newMirror(w, m); err != nil {
			return nil, err
		}
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	return w, nil
}

// Name is the witness's key name.
func (w *Witness) Name() string { return w.signer.Name() }

// VerifierKey is the witness's cosignature v1 verifier key text:
// "<name>+<key id hex>+<base64(0x04 || Ed25519 public key)>", for
// tdnote.NewVerifierForCosignatureV1.
func (w *Witness) VerifierKey() string { return w.vkey }

// State is the stored state of the log origin (nil: never cosigned).
func (w *Witness) State(origin string) *LogState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.state[origin]; st != nil {
		c := *st
		return &c
	}
	return nil
}

func (w *Witness) statePath(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(w.cfg.Dir, "logs", hex.EncodeToString(sum[:])+".json")
}

// keyFile is the witness key: a signed-note private key text,
// "PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || Ed25519 seed)>".
const keyFile = "witness.key"

// loadKey reads the key from file if set (it must exist), else from
// dir (loadOrCreateKey).
func loadKey(file, dir, name, keyName string) (string, error) {
	if file == "" {
		return loadOrCreateKey(dir, name, keyName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("witness key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// loadOrCreateKey reads the key or, if there is none, generates one named
// name (written 0600, atomically) with its verifier key beside it.
func loadOrCreateKey(dir, file, name string) (string, error) {
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("witness key: %w", err)
	}
	if name == "" {
		return "", errors.New("witness: no key yet and no name to create one under")
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", fmt.Errorf("witness key: %w", err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	id := keyID(name, pub)
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, seed...)))
	if _, err := tdnote.NewSignerForCosignatureV1(skey); err != nil {
		return "", fmt.Errorf("witness: name %q: %w", name, err)
	}
	if err := WriteFileAtomic(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("witness key: %w", err)
	}
	vkey, _ := vkeyOf(skey)
	if err := WriteFileAtomic(path[:len(path)-len(".key")]+".vkey", []byte(vkey+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("witness key: %w", err)
	}
	return skey, nil
}

// keyID is SHA-256(name || "\n" || 0x04 || public key)[:4] (tlog-cosignature).
func keyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{0x04})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// vkeyOf is the verifier key of a private key text.
func vkeyOf(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("witness key: malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return "", errors.New("witness key: malformed")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", parts[2], keyID(parts[2], pub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...))), nil
}

func readState(path string) (*LogState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	var st LogState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("witness state %s: %w", path, err)
	}
	return &st, nil
}

// WriteFileAtomic writes data to path so that path holds either its old
// content or all of data, even across a crash: a temporary file in the
// same directory, fsync, rename over path, fsync of the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeEvidence keeps a refused checkpoint signed by the log next to the
// one it contradicts, once per reason and signed checkpoint body (text):
// evidence/<origin hash>-<reason>-<body hash>.txt. Only checkpoints the log
// signed are kept, and a request repeated (or varied in its unsigned
// parts) does not add files, so a caller cannot fill the disk.
func (w *Witness) writeEvidence(origin, reason, text string, cosigned *LogState, body []byte) {
	o := sha256.Sum256([]byte(origin))
	t := sha256.Sum256([]byte(text))
	path := filepath.Join(w.cfg.Dir, "evidence", fmt.Sprintf("%s-%s-%s.txt", hex.EncodeToString(o[:8]), reason, hex.EncodeToString(t[:8])))
	if _, err := os.Stat(path); err == nil {
		w.cfg.Logger.Warn("witness: the log's conflicting checkpoint again; evidence already kept", "origin", origin, "reason", reason, "evidence", path)
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "minecart witness evidence v1\nreason %s\norigin %s\ntime %s\n\n", reason, origin, w.cfg.Now().UTC().Format(time.RFC3339))
	b.WriteString("cosigned checkpoint:\n")
	if cosigned != nil {
		b.WriteString(cosigned.Checkpoint)
		b.WriteString(cosigned.Cosignature)
	}
	b.WriteString("\nrefused add-checkpoint request:\n")
	b.Write(body)
	if err := WriteFileAtomic(path, b.Bytes(), 0o600); err != nil {
		w.cfg.Logger.Error("witness: evidence not written", "origin", origin, "reason", reason, "err", err)
		return
	}
	w.cfg.Logger.Error("witness: the log signed a checkpoint inconsistent with the one cosigned; evidence kept",
		"origin", origin, "reason", reason, "evidence", path)
}
