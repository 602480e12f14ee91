package witness_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/witness"
)

// testLog is a ledger book that grows block by block: its checkpoints
// and the consistency proofs between them are the ledger's own.
type testLog struct {
	t      testing.TB
	signer *ledger.Signer
	book   *ledger.Book
	cps    map[uint64]string // tree size -> checkpoint
	next   int
}

func newLog(t testing.TB, seed byte) *testLog {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(seed))
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, signer: s, book: ledger.NewBook(), cps: map[uint64]string{}}
}

// grow appends n credits (vehicle ids from prefix) in one block and
// returns the new checkpoint.
func (l *testLog) grow(n int, prefix string) string {
	l.t.Helper()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Clock: ledger.ClockEvent}
	for i := 0; i < n; i++ {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("%s%06d", prefix, l.next), 2, 10))
		l.next++
	}
	blks, _, _, err := l.book.Append(rel, n, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	cp := blks[len(blks)-1].Checkpoint
	l.cps[l.book.Size()] = cp
	return cp
}

// request is an add-checkpoint body from old to the head.
func (l *testLog) request(old uint64) []byte {
	l.t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < l.book.Size() {
		proof, err := l.book.Tree().ConsistencyProof(old, l.book.Size())
		if err != nil {
			l.t.Fatal(err)
		}
		for _, h := range proof {
			b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
	}
	b.WriteString("\n")
	b.WriteString(l.book.Checkpoint())
	return b.Bytes()
}

func newWitness(t testing.TB, dir string, logs ...*testLog) *witness.Witness {
	t.Helper()
	var keys []string
	for _, l := range logs {
		keys = append(keys, l.signer.VerifierKey())
	}
	w, err := witness.New(witness.Config{Dir: dir, Name: "witness.test/w1", Logs: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func code(err error) int {
	var e *witness.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return 500
	}
	return 200
}

// checkCosignature checks a cosignature line on checkpoint two ways: with
// formats/note's cosignature v1 verifier, and by hand from the spec
// (c2sp.org/tlog-cosignature: key id, timestamp, Ed25519 over
// "cosignature/v1\ntime <t>\n" || the note body).
func checkCosignature(t *testing.T, w *witness.Witness, l *testLog, checkpoint string, sig []byte) {
	t.Helper()
	if !bytes.HasPrefix(sig, []byte("— witness.test/w1 ")) || bytes.Count(sig, []byte("\n")) != 1 || sig[len(sig)-1] != '\n' {
		t.Fatalf("cosignature line %q", sig)
	}
	wv, err := tdnote.NewVerifierForCosignatureV1(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := note.NewVerifier(l.signer.VerifierKey())
	n, err := note.Open(append([]byte(checkpoint), sig...), note.VerifierList(lv, wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned checkpoint: %v, %d signatures", err, len(n.Sigs))
	}
	// By hand.
	vk := strings.SplitN(w.VerifierKey(), "+", 3)
	pubRaw, _ := base64.StdEncoding.DecodeString(vk[2])
	if len(pubRaw) != 33 || pubRaw[0] != 0x04 {
		t.Fatalf("verifier key %q: want type 0x04", w.VerifierKey())
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig[len("— witness.test/w1 "):])))
	if err != nil || len(raw) != 4+8+64 {
		t.Fatalf("signature: %d bytes, %v", len(raw), err)
	}
	if id := fmt.Sprintf("%08x", binary.BigEndian.Uint32(raw)); id != vk[1] {
		t.Errorf("key id %s, verifier key says %s", id, vk[1])
	}
	ts := binary.BigEndian.Uint64(raw[4:])
	if d := time.Since(time.Unix(int64(ts), 0)); d < -time.Minute || d > time.Hour {
		t.Errorf("timestamp %d", ts)
	}
	msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + n.Text
	if !ed25519.Verify(pubRaw[1:], []byte(msg), raw[12:]) {
		t.Errorf("signature does not verify over %q", msg)
	}
}

// TestAddCheckpoint: the happy path, 409 resync, 422 for a bad proof, 403
// for another key or a broken signature, 404 for an unknown origin.
func TestAddCheckpoint(t *testing.T) {
	l := newLog(t, 1)
	dir := t.TempDir()
	w := newWitness(t, dir, l)

	cp := l.grow(5, "v")
	sig, err := w.AddCheckpoint(l.request(0))
	if err != nil {
		t.Fatal(err)
	}
	checkCosignature(t, w, l, cp, sig)
	for _, n := range []int{1, 3, 1000, 256} {
		old := l.book.Size()
		cp = l.grow(n, "v")
		sig, err := w.AddCheckpoint(l.request(old))
		if err != nil {
			t.Fatalf("%d -> %d: %v", old, l.book.Size(), err)
		}
		checkCosignature(t, w, l, cp, sig)
	}
	size := l.book.Size()
	if st := w.State(ledgertest.Origin); st == nil || st.Size != size {
		t.Fatalf("state %+v", st)
	}
	// The same checkpoint again: cosigned again.
	if _, err := w.AddCheckpoint(l.request(size)); err != nil {
		t.Errorf("same checkpoint again: %v", err)
	}

	// 409: the client's old size is not the cosigned one; the body says
	// which it is, and the client resyncs with it.
	old := l.book.Size()
	l.grow(10, "v")
	_, err = w.AddCheckpoint(l.request(5))
	var e *witness.Error
	if !errors.As(err, &e) || e.Code != 409 || e.Size != old {
		t.Fatalf("stale old size: %v", err)
	}
	if _, err := w.AddCheckpoint(l.request(e.Size)); err != nil {
		t.Fatalf("after resync: %v", err)
	}

	// 422: a proof that does not verify (one bit flipped in each line in
	// turn, a line dropped, a line added).
	old = l.book.Size()
	l.grow(77, "v")
	good := l.request(old)
	lines := strings.Split(string(good), "\n")
	nproof := 0
	for _, ln := range lines[1:] {
		if ln == "" {
			break
		}
		nproof++
	}
	var bads [][]byte
	for i := 1; i <= nproof; i++ {
		h, _ := base64.StdEncoding.DecodeString(lines[i])
		h[7] ^= 1
		bad := append([]string(nil), lines...)
		bad[i] = base64.StdEncoding.EncodeToString(h)
		bads = append(bads, []byte(strings.Join(bad, "\n")))
	}
	bads = append(bads, []byte(strings.Join(append(append([]string(nil), lines[:1]...), lines[2:]...), "\n")))
	bads = append(bads, []byte(strings.Join(append(append(append([]string(nil), lines[:1]...), lines[1]), lines[1:]...), "\n")))
	for i, bad := range bads {
		if _, err := w.AddCheckpoint(bad); code(err) != 422 {
			t.Errorf("bad proof %d: %v", i, err)
		}
	}
	if st := w.State(ledgertest.Origin); st.Size != old {
		t.Fatalf("state moved on a bad proof: %d", st.Size)
	}
	ev, _ := os.ReadDir(filepath.Join(dir, "evidence"))
	if len(ev) == 0 {
		t.Errorf("no evidence kept of the inconsistent checkpoints")
	}
	if _, err := w.AddCheckpoint(good); err != nil {
		t.Fatalf("the good proof after the bad ones: %v", err)
	}

	// 403: the same origin signed by another key; a signature line of the
	// log's key name and id whose signature does not verify.
	other := newLog(t, 2)
	other.grow(3, "x")
	if _, err := w.AddCheckpoint(other.request(0)); code(err) != 403 {
		t.Errorf("another key: %v", err)
	}
	old = l.book.Size()
	l.grow(1, "v")
	req := l.request(old)
	i := bytes.LastIndex(req, []byte(" ")) + 1
	sigb, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(req[i:])))
	sigb[10] ^= 1
	broken := append(append([]byte(nil), req[:i]...), base64.StdEncoding.EncodeToString(sigb)+"\n"...)
	if _, err := w.AddCheckpoint(broken); code(err) != 403 {
		t.Errorf("broken signature: %v", err)
	}
	// 404: an origin it does not witness.
	s3, _ := ledger.NewSigner("elsewhere.example/log", ledgertest.Key(1))
	b3 := ledger.NewBook()
	blks, _, _, _ := b3.Append(ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Entries: []ledger.Entry{ledgertest.Credit("z", 2, 1)}}, 10, s3)
	if _, err := w.AddCheckpoint([]byte("old 0\n\n" + blks[0].Checkpoint)); code(err) != 404 {
		t.Errorf("unknown origin: %v", err)
	}
	// 400: the old size past the checkpoint.
	if _, err := w.AddCheckpoint([]byte(fmt.Sprintf("old %d\n\n%s", l.book.Size()+1, l.book.Checkpoint()))); code(err) != 400 {
		t.Errorf("old > size: %v", err)
	}
	// 422: old size 0 with a proof.
	w2 := newWitness(t, t.TempDir(), l)
	if _, err := w2.AddCheckpoint([]byte("old 0\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n\n" + l.book.Checkpoint())); code(err) != 422 {
		t.Errorf("old 0 with a proof: %v", err)
	}
}

// TestSplitView: the log signs two different checkpoints of the same size
// (two books that share a prefix): the witness cosigns the first it sees,
// refuses the other with 422, stays where it was, and keeps both signed
// checkpoints as evidence. A fork that grows further is refused too.
func TestSplitView(t *testing.T) {
	a, b := newLog(t, 1), newLog(t, 1)
	for _, l := range []*testLog{a, b} {
		l.grow(10, "v")
	}
	dir := t.TempDir()
	w := newWitness(t, dir, a)
	if _, err := w.AddCheckpoint(a.request(0)); err != nil {
		t.Fatal(err)
	}
	a.grow(5, "a")
	b.grow(5, "b") // same size, another root
	if _, err := w.AddCheckpoint(a.request(10)); err != nil {
		t.Fatal(err)
	}
	cosigned := w.State(ledgertest.Origin)
	if _, err := w.AddCheckpoint(b.request(15)); code(err) != 422 {
		t.Fatalf("the other checkpoint of size 15: %v", err)
	}
	// Submitted with a stale old size: 409 as the spec orders, and the
	// evidence kept all the same.
	if _, err := w.AddCheckpoint(b.request(10)); code(err) != 409 {
		t.Fatalf("the other checkpoint from 10: %v", err)
	}
	b.grow(20, "b") // the fork goes on: its proof from 15 is against its own root
	if _, err := w.AddCheckpoint(b.request(15)); code(err) != 422 {
		t.Fatalf("the fork, grown: %v", err)
	}
	if st := w.State(ledgertest.Origin); st.Size != 15 || st.Checkpoint != cosigned.Checkpoint {
		t.Fatalf("state moved: %+v", st)
	}
	// Evidence: one file per signed checkpoint and reason (the same
	// checkpoint sent twice, with two old sizes, is one file).
	ev, _ := os.ReadDir(filepath.Join(dir, "evidence"))
	if len(ev) != 2 {
		t.Fatalf("%d evidence files, want 2", len(ev))
	}
	var split string
	for _, e := range ev {
		if strings.Contains(e.Name(), "-same-size-other-root-") {
			split = e.Name()
		}
	}
	body, _ := os.ReadFile(filepath.Join(dir, "evidence", split))
	if split == "" || !bytes.Contains(body, []byte(b.cps[15])) || !bytes.Contains(body, []byte(strings.Split(a.cps[15], "\n\n")[0])) ||
		!bytes.HasPrefix(body, []byte("minecart witness evidence v1\nreason same-size-other-root\n")) {
		t.Errorf("evidence %s:\n%s", split, body)
	}
	if _, err := w.AddCheckpoint(b.request(15)); code(err) != 422 {
		t.Fatal(err)
	}
	if again, _ := os.ReadDir(filepath.Join(dir, "evidence")); len(again) != 2 {
		t.Errorf("the same conflicting checkpoint again added a file: %d", len(again))
	}
	// Both checkpoints of size 15 verify under the log key: the evidence
	// proves the log signed two histories.
	for _, cp := range []string{a.cps[15], b.cps[15]} {
		if _, err := ledger.VerifyCheckpoint(cp, a.signer.Public()); err != nil {
			t.Error(err)
		}
	}
}

// TestRestart: the key and the state survive a restart; a crash that left
// a temporary file behind changes nothing; a state that cannot be stored
// gives no cosignature.
func TestRestart(t *testing.T) {
	l := newLog(t, 1)
	dir := t.TempDir()
	w := newWitness(t, dir, l)
	l.grow(7, "v")
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	// Durable before the answer: the file holds it now.
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files %v", files)
	}
	disk, _ := os.ReadFile(files[0])
	if !bytes.Contains(disk, []byte(`"size": 7`)) {
		t.Fatalf("state on disk: %s", disk)
	}
	if fi, err := os.Stat(filepath.Join(dir, "witness.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	// A crash in the middle of a write leaves at most a temporary file.
	if err := os.WriteFile(filepath.Join(dir, "logs", ".garbage.json.tmp123"), []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	w2 := newWitness(t, dir, l)
	if w2.VerifierKey() != w.VerifierKey() {
		t.Errorf("key changed across a restart")
	}
	if st := w2.State(ledgertest.Origin); st == nil || st.Size != 7 {
		t.Fatalf("state after restart: %+v", st)
	}
	if _, err := w2.AddCheckpoint(l.request(0)); code(err) != 409 {
		t.Errorf("old 0 after restart: %v", err)
	}
	// The state cannot be stored (its path is a directory now): no
	// cosignature, the state unchanged.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(files[0], 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files[0], "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.grow(3, "v")
	sig, err := w2.AddCheckpoint(l.request(7))
	if err == nil || sig != nil || code(err) != 500 {
		t.Fatalf("unstorable state: %q, %v", sig, err)
	}
	if st := w2.State(ledgertest.Origin); st.Size != 7 {
		t.Fatalf("state moved without being stored: %d", st.Size)
	}
	// Another name for an existing key is refused.
	if _, err := witness.New(witness.Config{Dir: dir, Name: "other/w", Logs: []string{l.signer.VerifierKey()}}); err == nil {
		t.Errorf("renamed witness accepted")
	}
}

// TestConcurrentAdds: requests racing from the same old size: exactly one
// is cosigned, the others get 409 (the spec's rollback race).
func TestConcurrentAdds(t *testing.T) {
	l := newLog(t, 1)
	w := newWitness(t, t.TempDir(), l)
	l.grow(4, "v")
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	var reqs [][]byte
	for i := 0; i < 6; i++ {
		l.grow(1+i, "v")
		reqs = append(reqs, l.request(4))
	}
	codes := make([]int, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.AddCheckpoint(reqs[i])
			codes[i] = code(err)
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == 200 {
			ok++
		} else if c != 409 {
			t.Errorf("code %d", c)
		}
	}
	if ok != 1 {
		t.Errorf("%d cosigned of %d racing from the same old size: %v", ok, len(reqs), codes)
	}
}

// TestHTTP: the API over HTTP: statuses, the 409 body and type, the body
// limit, the monitoring GET.
func TestHTTP(t *testing.T) {
	l := newLog(t, 1)
	w := newWitness(t, t.TempDir(), l)
	hs := httptest.NewServer(w.Handler())
	defer hs.Close()
	post := func(body []byte) (*http.Response, string) {
		resp, err := http.Post(hs.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	hash := "/" + fmt.Sprintf("%x", sha256Sum(ledgertest.Origin)) + "/checkpoint"
	if resp, err := http.Get(hs.URL + hash); err != nil || resp.StatusCode != 404 {
		t.Fatalf("monitoring GET before any cosignature: %v %v", resp.Status, err)
	}
	l.grow(3, "v")
	resp, body := post(l.request(0))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "— witness.test/w1 ") {
		t.Fatalf("add: %s %q", resp.Status, body)
	}
	checkCosignature(t, w, l, l.book.Checkpoint(), []byte(body))
	l.grow(3, "v")
	resp, body = post(l.request(0))
	if resp.StatusCode != 409 || body != "3\n" || resp.Header.Get("Content-Type") != "text/x.tlog.size" {
		t.Fatalf("409: %s %q %v", resp.Status, body, resp.Header)
	}
	if resp, _ := post([]byte("old 3\n\n")); resp.StatusCode != 400 {
		t.Errorf("no checkpoint: %s", resp.Status)
	}
	if resp, _ := post(bytes.Repeat([]byte("A"), witness.MaxBody+1)); resp.StatusCode != 413 {
		t.Errorf("oversized body: %s", resp.Status)
	}
	if resp, err := http.Get(hs.URL + "/add-checkpoint"); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET add-checkpoint: %v", resp.Status)
	}
	r, err := http.Get(hs.URL + hash)
	if err != nil {
		t.Fatal(err)
	}
	mon, _ := io.ReadAll(r.Body)
	r.Body.Close()
	wv, _ := tdnote.NewVerifierForCosignatureV1(w.VerifierKey())
	lv, _ := note.NewVerifier(l.signer.VerifierKey())
	if n, err := note.Open(mon, note.VerifierList(lv, wv)); err != nil || len(n.Sigs) != 2 || !strings.HasPrefix(n.Text, ledgertest.Origin+"\n3\n") {
		t.Errorf("monitoring checkpoint %q: %v", mon, err)
	}
}

// TestParseRequest: malformed bodies are 400, well-formed ones parse.
func TestParseRequest(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"old 0\n\ncp\n", true},
		{"old 5\n" + h + "\n" + h + "\n\ncp\n", true},
		{"old 0\ncp\n", false},
		{"old 00\n\ncp\n", false},
		{"old 01\n\ncp\n", false},
		{"old -1\n\ncp\n", false},
		{"old  1\n\ncp\n", false},
		{"Old 1\n\ncp\n", false},
		{"old 1\r\n\ncp\n", false},
		{"old 18446744073709551616\n\ncp\n", false},
		{"old 1\n" + h[:40] + "\n\ncp\n", false},
		{"old 1\n" + strings.TrimRight(h, "=") + "\n\ncp\n", false},
		{"old 1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n\ncp\n", false},
		{"old 1\n" + strings.Repeat(h+"\n", 63) + "\ncp\n", true},
		{"old 1\n" + strings.Repeat(h+"\n", 64) + "\ncp\n", false},
		{"old 1\n\n", false},
		{"", false},
	} {
		_, err := witness.ParseRequest([]byte(tc.body))
		if (err == nil) != tc.ok || (err != nil && code(err) != 400) {
			t.Errorf("%q: %v", tc.body, err)
		}
	}
}

// FuzzAddCheckpoint: any body is answered without a crash; a cosignature
// is only ever given for a checkpoint signed by the log that extends the
// last one cosigned, and the stored size never goes back.
func FuzzAddCheckpoint(f *testing.F) {
	l := newLog(f, 1)
	l.grow(3, "v")
	f.Add(l.request(0))
	l.grow(5, "v")
	f.Add(l.request(3))
	f.Add(l.request(0))
	f.Add([]byte("old 3\n\n"))
	w := newWitness(f, f.TempDir(), l)
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		f.Fatal(err)
	}
	_, _ = w.AddCheckpoint([]byte("x"))
	lv, _ := note.NewVerifier(l.signer.VerifierKey())
	f.Fuzz(func(t *testing.T, body []byte) {
		before := w.State(ledgertest.Origin).Size
		sig, err := w.AddCheckpoint(body)
		after := w.State(ledgertest.Origin)
		if after.Size < before {
			t.Fatalf("state went back from %d to %d", before, after.Size)
		}
		if err != nil {
			if sig != nil || after.Size != before {
				t.Fatalf("refused (%v) but cosigned or moved", err)
			}
			return
		}
		req, perr := witness.ParseRequest(body)
		if perr != nil {
			t.Fatalf("cosigned a body that does not parse: %v", perr)
		}
		if _, err := note.Open(req.Checkpoint, note.VerifierList(lv)); err != nil {
			t.Fatalf("cosigned a checkpoint the log did not sign: %v", err)
		}
		if req.OldSize != before {
			t.Fatalf("cosigned from old size %d, state was %d", req.OldSize, before)
		}
		root, _ := l.book.Tree().RootAt(after.Size)
		if !bytes.Equal(after.Root, root[:]) {
			t.Fatalf("cosigned a root the log's tree does not have at %d", after.Size)
		}
	})
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
