package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// avscVersion is the npm package the stock-reader tests use.
const avscVersion = "avsc@5.7.9"

// avscNodePath returns a NODE_PATH under which node resolves avsc, or skips
// the test saying why. It uses $MINECART_NODE_PATH if set (CI installs avsc
// there: npm install --prefix DIR avsc@5.7.9, then MINECART_NODE_PATH=DIR/node_modules);
// otherwise it installs avsc once into a cache under the temp directory. With
// MINECART_REQUIRE_NODE=1 a missing node or avsc fails the test instead.
func avscNodePath(t *testing.T) string {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("MINECART_REQUIRE_NODE") == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if _, err := exec.LookPath("node"); err != nil {
		skip("node is not installed: the stock Avro reader (npm %s) cannot run", avscVersion)
	}
	resolves := func(nodePath string) bool {
		cmd := exec.Command("node", "-e", "require.resolve('avsc')")
		cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
		return cmd.Run() == nil
	}
	if p := os.Getenv("MINECART_NODE_PATH"); p != "" {
		if !resolves(p) {
			skip("MINECART_NODE_PATH=%s: node cannot resolve avsc there", p)
		}
		return p
	}
	dir := filepath.Join(os.TempDir(), "minecart-avsc")
	nodePath := filepath.Join(dir, "node_modules")
	if resolves(nodePath) {
		return nodePath
	}
	if _, err := exec.LookPath("npm"); err != nil {
		skip("avsc is not installed and npm is missing; set MINECART_NODE_PATH to a node_modules with %s", avscVersion)
	}
	out, err := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--silent", avscVersion).CombinedOutput()
	if err != nil || !resolves(nodePath) {
		skip("npm install %s into %s: %v\n%s", avscVersion, dir, err, out)
	}
	return nodePath
}

func runNode(t *testing.T, nodePath string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("node", append([]string{"testdata/stock.js"}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node stock.js %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// TestStockReaderDecodes proves that what minecart writes is readable by an
// Avro library that knows nothing of minecart but the .avsc file: for every
// embedded schema, a record filling every field is encoded with
// SingleObject; testdata/stock.js then checks the C3 01 header and the
// fingerprint against avsc's own canonical form, decodes the body with avsc
// and compares every field with what was written.
func TestStockReaderDecodes(t *testing.T) {
	nodePath := avscNodePath(t)
	dir := t.TempDir()
	type stockCase struct {
		SchemaFile string `json:"schema_file"`
		RecordFile string `json:"record_file"`
		Expected   any    `json:"expected"`
	}
	var cases []stockCase
	s := SingleObject()
	for i, name := range Names() {
		text, err := Schema(name)
		if err != nil {
			continue // TestEmbeddedSchemas reports it
		}
		native, expected, err := newSample(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, err := s.Encode(name, native)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		rec := filepath.Join(dir, fmt.Sprintf("%d.bin", i))
		if err := os.WriteFile(rec, b, 0o600); err != nil {
			t.Fatal(err)
		}
		abs, err := filepath.Abs(fileName(name))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, stockCase{SchemaFile: abs, RecordFile: rec, Expected: expected})
	}
	casesFile := filepath.Join(dir, "cases.json")
	b, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(casesFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, nodePath, "decode", casesFile)
	if n := bytes.Count(out, []byte("\nok ")) + boolInt(bytes.HasPrefix(out, []byte("ok "))); n != len(cases) {
		t.Errorf("stock reader decoded %d of %d records:\n%s", n, len(cases), out)
	}
	t.Logf("avsc decoded %d records, one per schema", len(cases))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestFingerprintsLiveAvsc recomputes every schema's canonical form and
// fingerprint with avsc now (TestFingerprintsMatchAvsc uses the committed
// copy) and compares.
func TestFingerprintsLiveAvsc(t *testing.T) {
	nodePath := avscNodePath(t)
	var got map[string]struct {
		Canonical   string `json:"canonical"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal(runNode(t, nodePath, "fingerprints", "."), &got); err != nil {
		t.Fatal(err)
	}
	cat := embeddedCatalog()
	for _, name := range cat.names {
		e := cat.byName[name]
		if e.err != nil {
			continue
		}
		if g := got[name]; g.Canonical != e.canonical || g.Fingerprint != fmt.Sprintf("%016x", e.fp) {
			t.Errorf("%s: minecart %016x %s\navsc %s %s", name, e.fp, e.canonical, g.Fingerprint, g.Canonical)
		}
	}
}
