package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
