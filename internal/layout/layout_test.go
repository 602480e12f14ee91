// Package layout checks the import rules of docs/layout.md with `go list`:
// the rules hold because a test fails the moment a package breaks one.
package layout

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/minecart/minecart/"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list returns every package of the module (tests excluded), with its direct
// imports and all its dependencies.
func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// kafkaOrClickHouse are the client libraries domain code never links.
var kafkaOrClickHouse = []string{"github.com/twmb/franz-go", "github.com/segmentio/kafka-go", "github.com/ClickHouse/"}

func has(deps []string, prefixes ...string) []string {
	var found []string
	for _, d := range deps {
		for _, p := range prefixes {
			if strings.HasPrefix(d, p) {
				found = append(found, d)
			}
		}
	}
	return found
}

// layers is the table of docs/layout.md ("Imports"), top to bottom: a
// package imports from its own layer and the layers below. A pattern is a
// package path in which "*" stands for one path element (path.Match).
var layers = []struct {
	name     string
	patterns []string
}{
	{"wiring", []string{"cmd/minecart", "cmd/partner-example", "services/*/cmd/*", "infra/chserver/cmd/chserver",
		"loadtest/cmd/loadtest", "schemas/internal/avrogen/cmd", "services/stack", "services/daemon",
		"services/daemon/daemontest", "services/settlement/settletest", "internal/envflag", "internal/layout", "loadtest/chaos", "loadtest/soak"}},
	{"Kafka and infrastructure adapters", []string{"pipelines/kafka", "pipelines/kafka/kafkatest", "services/ledger/blocks", "services/pseudonym/follow",
		"services/gateway", "loadtest", "schemas/registry", "infra/*", "infra/chserver/chtest", "cmd/partner-example/partner"}},
	{"stages and APIs, over the contract", []string{"services/ingest", "services/*/stage", "services/sink", "services/sink/chcols", "services/owner",
		"services/ledger/proofs", "services/settlement/api", "services/campaign/api", "services/auth", "services/auth/authtest", "services/witness", "services/web"}},
	{"domain", []string{"services/telemetry", "services/telemetry/wire", "services/scoring", "services/scoring/scoringtest", "services/scoring/replay",
		"services/ledger", "services/ledger/merkle", "services/ledger/ledgertest", "services/settlement", "services/ids", "services/owner/view", "services/sealbox", "services/campaign", "services/pseudonym", "services/shred", "loadtest/fleet", "loadtest/fairness"}},
	{"base", []string{"schemas/avro", "schemas", "schemas/internal/avrogen", "pipelines", "pipelines/prom", "internal/cputime", "internal/benchfig"}},
}

// Indexes of layers with rules of their own.
const (
	domainLayer = 3
	baseLayer   = 4
)

// layerOf returns the index in layers of every package of pkgs, failing the
// test for a package in no layer or in several, and for a pattern that
// matches no package (the table would be out of date).
func layerOf(t *testing.T, pkgs map[string]pkg) map[string]int {
	t.Helper()
	of := map[string]int{}
	used := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(pkgs)) {
		var in []int
		for i, l := range layers {
			for _, pat := range l.patterns {
				if ok, err := path.Match(pat, p); err != nil {
					t.Fatalf("pattern %q: %v", pat, err)
				} else if ok {
					in = append(in, i)
					used[pat] = true
				}
			}
		}
		switch len(in) {
		case 0:
			t.Errorf("%s is in no layer: place it in the table of docs/layout.md (Imports) and in layers here", p)
		case 1:
			of[p] = in[0]
		default:
			t.Errorf("%s is in several layers %v", p, in)
		}
	}
	for _, l := range layers {
		for _, pat := range l.patterns {
			if !used[pat] {
				t.Errorf("layer %q: %s matches no package", l.name, pat)
			}
		}
	}
	return of
}

// TestLayers: every package of the module is in exactly one layer and
// imports only packages of its own layer or of lower ones.
func TestLayers(t *testing.T) {
	pkgs := list(t)
	of := layerOf(t, pkgs)
	for p, li := range of {
		for _, imp := range pkgs[p].Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if di, ok := of[dep]; ok && di < li {
				t.Errorf("%s (%s) imports %s (%s), a layer above", p, layers[li].name, dep, layers[di].name)
			}
		}
	}
}

// TestLayersDocumented: the table of docs/layout.md lists the same layers,
// in the same order, with the same packages, as layers.
func TestLayersDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/layout.md")
	if err != nil {
		t.Fatal(err)
	}
	_, imports, ok := strings.Cut(string(doc), "\n## Imports\n")
	if !ok {
		t.Fatal("docs/layout.md has no Imports section")
	}
	var rows [][]string // layer name, then its patterns
	for line := range strings.SplitSeq(imports, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if !strings.HasPrefix(line, "|") || len(cells) != 2 || !strings.Contains(cells[1], "`") {
			continue // not a row of the table
		}
		row := []string{cells[0]}
		for i, part := range strings.Split(cells[1], "`") {
			if i%2 == 1 {
				row = append(row, part)
			}
		}
		rows = append(rows, row)
	}
	var want [][]string
	for _, l := range layers {
		want = append(want, append([]string{l.name}, l.patterns...))
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("docs/layout.md's layer table:\n%q\nwant (internal/layout's layers):\n%q", rows, want)
	}
}

// TestDomainIsPure: the packages of the domain layer link no Kafka or
// ClickHouse client and no Prometheus; those of the base layer (the
// contract, the schemas) no Kafka or ClickHouse client; the partner
// example, which proves kafka-go works alone, neither franz-go nor
// Prometheus.
func TestDomainIsPure(t *testing.T) {
	pkgs := list(t)
	banned := map[string][]string{"cmd/partner-example": {"github.com/twmb/franz-go", "github.com/ClickHouse/", "github.com/prometheus/"}}
	for p, li := range layerOf(t, pkgs) {
		switch li {
		case domainLayer:
			banned[p] = slices.Concat(kafkaOrClickHouse, []string{"github.com/prometheus/"})
		case baseLayer:
			banned[p] = kafkaOrClickHouse
		}
	}
	for _, p := range []string{"services/telemetry", "services/ledger", "schemas", "pipelines", "cmd/partner-example"} {
		if banned[p] == nil {
			t.Errorf("%s: not checked", p) // the layer indexes above are wrong
		}
	}
	for p, b := range banned {
		if bad := has(pkgs[p].Deps, b...); len(bad) > 0 {
			t.Errorf("%s links %v", p, bad)
		}
	}
}

// cmdRoot is "cmd/<name>" of a path under cmd/, else "".
func cmdRoot(path string) string {
	parts := strings.SplitN(path, "/", 3)
	if len(parts) < 2 || parts[0] != "cmd" {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// TestImportDirections: the rules the layers leave open: infra knows
// nothing of services or pipelines; nothing outside a command imports its
// packages. (Stages never importing the runtime, nor the contract, follows
// from TestLayers.)
func TestImportDirections(t *testing.T) {
	for path, p := range list(t) {
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			switch {
			case strings.HasPrefix(dep, "cmd/") && cmdRoot(dep) != cmdRoot(path):
				t.Errorf("%s imports %s, part of another command", path, dep)
			case strings.HasPrefix(path, "infra/") && (strings.HasPrefix(dep, "services/") || strings.HasPrefix(dep, "pipelines")):
				t.Errorf("%s (infra) imports %s", path, dep)
			}
		}
	}
}
