package witness_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/witness"
)

// TestParseEvidence: the evidence file a split view leaves parses back
// into the cosigned checkpoint and the refused request; malformed files
// are refused.
func TestParseEvidence(t *testing.T) {
	l := newLog(t, 1)
	dir := t.TempDir()
	w := newWitness(t, dir, l)
	cp := l.grow(3, "a")
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	fork := newLog(t, 1)
	fork.grow(3, "x")
	body := fork.request(3)
	if _, err := w.AddCheckpoint(body); code(err) != 422 {
		t.Fatalf("fork: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "evidence", "*.txt"))
	if len(files) != 1 {
		t.Fatalf("%d evidence files", len(files))
	}
	b, _ := os.ReadFile(files[0])
	e, err := witness.ParseEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	st := w.State(l.signer.Origin())
	if e.Reason != "same-size-other-root" || e.Origin != l.signer.Origin() || !strings.HasPrefix(e.Cosigned, cp) ||
		e.Cosigned != st.Checkpoint+st.Cosignature || string(e.Request.Checkpoint) != fork.book.Checkpoint() || e.Request.OldSize != 3 {
		t.Errorf("parsed %+v", e)
	}
	for _, bad := range []string{
		"", "minecart witness evidence v2\n", "minecart witness evidence v1\nreason x\n",
		"minecart witness evidence v1\n\ncosigned checkpoint:\n\nrefused add-checkpoint request:\nold x\n\ncp\n",
		"minecart witness evidence v1\n\nrefused add-checkpoint request:\nold 0\n\ncp\n\ncosigned checkpoint:\n",
	} {
		if _, err := witness.ParseEvidence([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseEvidence(f *testing.F) {
	f.Add([]byte("minecart witness evidence v1\nreason r\n\ncosigned checkpoint:\n\nrefused add-checkpoint request:\nold 0\n\no\n1\nAA==\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := witness.ParseEvidence(b)
		if err == nil && (e.Request == nil || len(e.Request.Checkpoint) == 0) {
			t.Fatalf("parsed without a request: %+v", e)
		}
	})
}
