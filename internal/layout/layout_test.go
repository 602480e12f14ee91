// Package layout checks the import rules of docs/layout.md with `go list`:
// the rules hold because a test fails the moment a package breaks one.
package layout

import (
	"encoding/json"
	"os/exec"
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

// TestDomainIsPure: the domain packages, the contract, the schemas and the
// partner example link no Kafka or ClickHouse client (and the partner
// example, which proves kafka-go works alone, neither franz-go nor
// Prometheus); domain packages no Prometheus either.
func TestDomainIsPure(t *testing.T) {
	pkgs := list(t)
	for _, c := range []struct {
		path   string
		banned []string
	}{
		{"services/telemetry", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"services/scoring", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"services/ledger", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"services/ledger/merkle", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"services/settlement", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"loadtest/fleet", append(kafkaOrClickHouse, "github.com/prometheus/")},
		{"schemas", kafkaOrClickHouse},
		{"schemas/avro", kafkaOrClickHouse},
		{"pipelines", kafkaOrClickHouse},
		{"cmd/partner-example", []string{"github.com/twmb/franz-go", "github.com/ClickHouse/", "github.com/prometheus/"}},
	} {
		p, ok := pkgs[c.path]
		if !ok {
			t.Errorf("%s: no such package", c.path)
			continue
		}
		if bad := has(p.Deps, c.banned...); len(bad) > 0 {
			t.Errorf("%s links %v", c.path, bad)
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

// TestImportDirections: stage packages see the contract, not the runtime;
// infra knows nothing of services or pipelines; nothing outside a command
// imports its packages.
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
			case (strings.HasSuffix(path, "/stage") || path == "services/ingest") && dep == "pipelines/kafka":
				t.Errorf("stage %s imports the runtime", path)
			case strings.HasPrefix(dep, "pipelines/kafka") && strings.HasPrefix(path, "pipelines") && !strings.HasPrefix(path, "pipelines/kafka"):
				t.Errorf("the contract %s imports the runtime", path)
			}
		}
	}
}
