package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestComposeSecretsAndPorts: docker-compose.yml refuses to start without
// each secret (no change-me fallback), and publishes on all interfaces
// only what authenticates its callers or is public by design (Kafka with
// SCRAM, the device gateway, the ledger's proofs); the owner and
// redemption APIs and ClickHouse only on 127.0.0.1, the Schema Registry
// not at all.
func TestComposeSecretsAndPorts(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("no docker-compose")
	}
	secrets := []string{"MINECART_KAFKA_PASSWORD", "PARTNER_ACME_PASSWORD", "CLICKHOUSE_PASSWORD", "MINECART_SESSION_KEY"}
	compose := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-f", "../../docker-compose.yml", "--project-directory", "../.."}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "change-me") {
		t.Error("docker-compose.yml still has a change-me fallback")
	}
	all := func(except string) []string {
		var env []string
		for _, s := range secrets {
			if s != except {
				env = append(env, s+"=x-not-a-secret-x-not-a-secret-x-not-a-secret")
			}
		}
		return env
	}
	for _, s := range secrets {
		if out, err := compose(all(s), "config", "-q"); err == nil || !strings.Contains(out, s) {
			t.Errorf("without %s: %v %s, want a refusal naming it", s, err, out)
		}
	}
	out, err := compose(all(""), "config")
	if err != nil {
		t.Fatalf("config with every secret: %v\n%s", err, out)
	}
	public := map[string]bool{"kafka": true, "gateway": true, "ledger": true}
	service, inServices, published := "", false, map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "services:":
			inServices = true
		case !strings.HasPrefix(line, " ") && line != "":
			inServices = false
		case inServices && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			service = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inServices && (strings.HasPrefix(line, "    - published:") || strings.HasPrefix(line, "    - ") && strings.Count(line, ":") >= 2 && strings.Contains(line, "/tcp")):
			published[service] = append(published[service], strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "-")))
		}
	}
	if len(published) < 5 {
		t.Fatalf("found published ports of %v only: the parser of `config` lost its way", published)
	}
	for svc, ports := range published {
		for _, p := range ports {
			if !public[svc] && !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q beyond the loopback", svc, p)
			}
		}
	}
	if len(published["schema-registry"]) > 0 {
		t.Errorf("the Schema Registry is published: %v", published["schema-registry"])
	}
}

// TestComposeWitnesses: docker-compose.yml runs the three witnesses as
// their own services (`minecart witness`, each its own state volume, no
// published port), witness-3 in mirror mode on the ledger's tiles
// (http://ledger:8082/ledger), and the policy its comment spells out for
// those URLs parses as minecart run's: 2 of w1..w3 and the mirror key m3
// required, whose witness API is witness-3's.
func TestComposeWitnesses(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("no docker-compose")
	}
	cmd := exec.Command(bin, "-f", "../../docker-compose.yml", "--project-directory", "../..", "config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MINECART_KAFKA_PASSWORD=x", "PARTNER_ACME_PASSWORD=x",
		"CLICKHOUSE_PASSWORD=x", "MINECART_SESSION_KEY=x"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("config: %v\n%s", err, out)
	}
	// Each service's command list, ports and volumes, from the YAML `config` prints.
	type svc struct{ command, ports, volumes []string }
	services := map[string]*svc{}
	var cur *svc
	var list *[]string
	inServices := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "services:":
			inServices = true
		case !strings.HasPrefix(line, " ") && line != "":
			inServices = false
		case !inServices:
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			cur = &svc{}
			services[strings.TrimSuffix(strings.TrimSpace(line), ":")] = cur
			list = nil
		case cur != nil && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && !strings.HasPrefix(line, "    -"):
			switch strings.TrimSpace(line) {
			case "command:":
				list = &cur.command
			case "ports:":
				list = &cur.ports
			case "volumes:":
				list = &cur.volumes
			default:
				list = nil
			}
		case list != nil && strings.HasPrefix(line, "    - "):
			*list = append(*list, strings.TrimPrefix(line, "    - "))
		}
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("witness-%d", i)
		s := services[name]
		if s == nil || len(s.command) == 0 || s.command[0] != "witness" {
			t.Fatalf("%s: not a `minecart witness` service: %+v", name, s)
		}
		if len(s.ports) > 0 {
			t.Errorf("%s publishes %v", name, s.ports)
		}
		if len(s.volumes) != 1 || !strings.HasPrefix(s.volumes[0], name+":/var/lib/minecart/witness") {
			t.Errorf("%s: volumes %v, want its own state volume", name, s.volumes)
		}
		mirror := slices.Index(s.command, "--mirror")
		switch {
		case i < 3 && mirror >= 0:
			t.Errorf("%s mirrors: %v", name, s.command)
		case i == 3 && (mirror < 0 || mirror+1 >= len(s.command) || s.command[mirror+1] != "http://ledger:8082/ledger"):
			t.Errorf("%s: not a mirror of http://ledger:8082/ledger: %v", name, s.command)
		}
	}
	// The policy of the ledger service's comment, with keys.
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	policy := "log " + signer.VerifierKey() + "\n"
	for i := 1; i <= 3; i++ {
		_, vkey := ledgertest.Cosigner(t, fmt.Sprintf("minecart.compose/witness-%d", i), byte(40+i))
		policy += fmt.Sprintf("witness w%d %s http://witness-%d:8090\n", i, vkey, i)
	}
	_, mkey := ledgertest.Cosigner(t, "minecart.compose/witness-3/mirror", 50)
	policy += "witness m3 " + mkey + " http://witness-3:8090/ledger\ngroup witnesses 2 w1 w2 w3\ngroup mirrors any m3\ngroup embedded all witnesses mirrors\nquorum embedded\n"
	p, err := ledger.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	if q := p.QuorumText(); q != "all of (2 of (w1, w2, w3), any of (m3))" || !p.Requires("m3") || !p.SatisfiedBy("w1", "w3", "m3") || p.SatisfiedBy("w1", "w2", "w3") {
		t.Errorf("compose policy: quorum %s, m3 required %v", q, p.Requires("m3"))
	}
	for _, w := range p.Witnesses {
		if w.Name == "m3" && (!w.Mirror || w.WitnessAPI() != "http://witness-3:8090") {
			t.Errorf("m3: mirror %v, witness API %s", w.Mirror, w.WitnessAPI())
		}
	}
}
