package k8s

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
)

// TestWitnesses: three witness StatefulSets (one replica each, a
// PersistentVolumeClaim for the state, the key from its own Secret, the
// ledger's key from the policy ConfigMap), one of them a mirror of the
// ledger's Service; each with a Service; the ConfigMap's policy parses
// (ledger.ParsePolicy), names every witness at its Service and the
// mirror at its /ledger prefix, counts the mirror in its quorum, and its
// log line is the ledger.vkey the witnesses are started with; the ledger
// Deployment reads the policy from that ConfigMap.
func TestWitnesses(t *testing.T) {
	objs := decode(t, "witnesses.yaml", "minecart.yaml")
	var cm object
	for _, o := range ofKind(objs, "ConfigMap") {
		if o.str("metadata", "name") == "witness-policy" {
			cm = o
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap witness-policy")
	}
	p, err := ledger.ParsePolicy([]byte(cm.str("data", "witness-policy.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if p.Log != strings.TrimSpace(cm.str("data", "ledger.vkey")) {
		t.Errorf("policy log %q, ledger.vkey %q", p.Log, cm.str("data", "ledger.vkey"))
	}
	services := map[string]object{}
	for _, s := range ofKind(objs, "Service") {
		services[s.str("metadata", "name")] = s
	}
	sets := ofKind(objs, "StatefulSet")
	if len(sets) != 3 {
		t.Fatalf("%d StatefulSets, want 3 witnesses", len(sets))
	}
	mirrors := 0
	for _, s := range sets {
		name := s.str("metadata", "name")
		if s.get("spec", "replicas") != 1 || s.str("spec", "serviceName") != name || services[name] == nil {
			t.Errorf("%s: want replicas 1 and its own Service", name)
		}
		pvc := s.get("spec", "volumeClaimTemplates").([]any)
		if len(pvc) != 1 || object(pvc[0].(map[string]any)).str("metadata", "name") != "state" {
			t.Errorf("%s: want one PVC template named state", name)
		}
		c := object(s.get("spec", "template", "spec", "containers").([]any)[0].(map[string]any))
		var args []string
		for _, a := range c.get("args").([]any) {
			args = append(args, a.(string))
		}
		flag := func(f string) string {
			if i := slices.Index(args, f); i >= 0 && i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if flag("--state-dir") != "/var/lib/minecart-witness" || !strings.HasPrefix(flag("--key"), "/run/secrets/") || flag("--log") != "@/etc/minecart/witness/ledger.vkey" {
			t.Errorf("%s: args %v", name, args)
		}
		secret := ""
		for _, v := range s.get("spec", "template", "spec", "volumes").([]any) {
			if n := object(v.(map[string]any)).str("secret", "secretName"); n != "" {
				secret = n
			}
		}
		if secret != "minecart-"+name+"-key" {
			t.Errorf("%s: key Secret %q", name, secret)
		}
		// The policy names it at its Service.
		want := "http://" + name + ".minecart.svc:8090"
		found := false
		for _, w := range p.Witnesses {
			if w.URL == want && strings.HasPrefix(w.VKey, name+".minecart.example+") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no policy witness at %s", name, want)
		}
		if m := flag("--mirror"); m != "" {
			mirrors++
			if u, err := url.Parse(m); err != nil || u.Host != "ledger.minecart.svc:8084" || u.Path != "/ledger" {
				t.Errorf("%s: mirrors %q, want the ledger Service's /ledger", name, m)
			}
			var mw *ledger.PolicyWitness
			for i, w := range p.Witnesses {
				if w.URL == want+"/ledger" {
					mw = &p.Witnesses[i]
				}
			}
			if mw == nil || !mw.Mirror || !strings.HasPrefix(mw.VKey, name+".minecart.example/mirror+") || flag("--mirror-key") == "" {
				t.Errorf("%s: the policy does not name its mirror key at %s/ledger", name, want)
			}
		}
	}
	if mirrors != 1 {
		t.Errorf("%d mirrors, want 1", mirrors)
	}
	if !p.Requires("m3") {
		t.Error("the quorum does not count the mirror")
	}
	var led object
	for _, d := range ofKind(objs, "Deployment") {
		if d.str("metadata", "name") == "ledger" {
			led = d
		}
	}
	if e := envOf(led)["MINECART_WITNESS_POLICY"]; e == nil || e.str("value") != "/etc/minecart/witness/witness-policy.txt" {
		t.Error("the ledger does not read the witness policy from the ConfigMap")
	}
}
