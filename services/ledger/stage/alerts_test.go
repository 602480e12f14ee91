package stage_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/minecart/minecart/services/ledger/stage"
)

// names records the metric names registered on it.
type names struct{ got map[string]bool }

func (n *names) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			n.got[m[1]] = true
		}
	}
	return nil
}
func (n *names) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = n.Register(c)
	}
}
func (n *names) Unregister(prometheus.Collector) bool { return true }

// TestAlertRules: infra/prometheus/ledger-alerts.yml parses as a rules
// file and every metric its expressions name is one the publisher
// registers (a renamed metric would silence the alert).
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("../../../infra/prometheus/ledger-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr string
				Labels      map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	l, _, p := setup(t, 2, 3)
	reg := &names{got: map[string]bool{}}
	if _, err := stage.NewPublisher(stage.PublisherConfig{Blocks: &memFollower{}, PublicKey: l.signer.Public(), Store: &memStore{},
		Cosign: stage.CosignConfig{Policy: p}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`minecart_[a-z_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v: want alert, expr and a severity", r)
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				n++
				if !reg.got[strings.TrimSuffix(m, "_count")] {
					t.Errorf("alert %s: metric %s is not registered by the publisher (have %v)", r.Alert, m, reg.got)
				}
			}
		}
	}
	if n < 3 || !strings.Contains(string(b), "LedgerNoWitnessQuorum") {
		t.Errorf("found %d metric references", n)
	}
}
