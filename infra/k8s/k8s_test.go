package k8s

import (
	"bytes"
	"errors"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/minecart/minecart/pipelines"
)

// telemetryPartitions is the partition count of the telemetry-keyed topics
// in topics.yaml (sized for 1M vehicles, docs/scale.md).
const telemetryPartitions = 48

// schemaLocation is where kubeconform finds the vendored schemas (no
// network: the upstream Kubernetes, Strimzi, Altinity and KEDA schemas are
// not reachable from CI).
const schemaLocation = "schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json"

// kubeconform finds the binary infra/setup.sh installs (go install puts it
// in GOPATH/bin). Missing, the test is skipped, unless
// MINECART_REQUIRE_KUBECONFORM=1 (make test sets it), then it fails.
func kubeconform(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("kubeconform"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "kubeconform")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("MINECART_REQUIRE_KUBECONFORM") == "1" {
		t.Fatal("kubeconform not found (infra/setup.sh installs it)")
	}
	t.Skip("kubeconform not installed; set MINECART_REQUIRE_KUBECONFORM=1 to fail instead")
	return ""
}

func manifests(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	return files
}

// object is one manifest document, decoded.
type object map[string]any

func (o object) str(path ...string) string {
	v, _ := o.get(path...).(string)
	return v
}

func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func decode(t *testing.T, files ...string) []object {
	t.Helper()
	var out []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o map[string]any
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o != nil {
				out = append(out, object(o))
			}
		}
	}
	return out
}

func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.str("kind") == kind {
			out = append(out, o)
		}
	}
	return out
}

// TestKubeconform validates every manifest with kubeconform -strict
// against the vendored schemas: every document must be found valid.
func TestKubeconform(t *testing.T) {
	bin := kubeconform(t)
	files := manifests(t)
	args := append([]string{"-strict", "-summary", "-schema-location", schemaLocation}, files...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubeconform: %v\n%s", err, out)
	}
	n := len(decode(t, files...))
	if want := regexp.MustCompile(`Valid: (\d+), Invalid: 0, Errors: 0, Skipped: 0`).FindSubmatch(out); want == nil || string(want[1]) != strconv.Itoa(n) {
		t.Fatalf("kubeconform did not validate all %d documents:\n%s", n, out)
	}
}

// TestKubeconformRefuses: the schemas catch a misspelt field, replication
// below 3, min.insync.replicas other than 2 and a lag trigger without its
// consumer group (testdata/bad.yaml, four documents, four refusals).
func TestKubeconformRefuses(t *testing.T) {
	bin := kubeconform(t)
	out, err := exec.Command(bin, "-strict", "-summary", "-schema-location", schemaLocation, "testdata/bad.yaml").CombinedOutput()
	if err == nil {
		t.Fatalf("kubeconform accepted testdata/bad.yaml:\n%s", out)
	}
	for _, want := range []string{"'replica' not allowed", "/spec/replicas': value must be 3", "missing property 'min.insync.replicas'",
		"missing property 'consumerGroup'", "Valid: 0, Invalid: 4"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubeconform output lacks %q:\n%s", want, out)
		}
	}
}

// TestTopicsMatchTopology: topics.yaml declares exactly the topics of
// pipelines.Topology (plus partner topics), with their compaction and
// retention, partitions as the topology's (telemetry-keyed ones sized for
// the target), replication 3 and min.insync.replicas 2.
func TestTopicsMatchTopology(t *testing.T) {
	topics := map[string]object{}
	for _, o := range ofKind(decode(t, "topics.yaml"), "KafkaTopic") {
		name := o.str("spec", "topicName")
		if name != o.str("metadata", "name") {
			t.Errorf("KafkaTopic %s: topicName %q", o.str("metadata", "name"), name)
		}
		topics[name] = o
	}
	for _, spec := range pipelines.Topology {
		o, ok := topics[spec.Name]
		if !ok {
			t.Errorf("topic %s of pipelines.Topology has no KafkaTopic", spec.Name)
			continue
		}
		delete(topics, spec.Name)
		want := int(spec.Partitions)
		if spec.Partitions == pipelines.TelemetryPartitions {
			want = telemetryPartitions
		}
		if got := o.get("spec", "partitions"); got != want {
			t.Errorf("%s: partitions %v, want %d", spec.Name, got, want)
		}
		if got := o.get("spec", "replicas"); got != 3 {
			t.Errorf("%s: replicas %v", spec.Name, got)
		}
		if got := o.get("spec", "config", "min.insync.replicas"); got != 2 {
			t.Errorf("%s: min.insync.replicas %v", spec.Name, got)
		}
		policy, retention := "delete", any(int(spec.Retention/time.Millisecond))
		if spec.Compacted {
			policy, retention = "compact", nil
		} else if spec.Retention == 0 {
			retention = -1
		}
		if got := o.str("spec", "config", "cleanup.policy"); got != policy {
			t.Errorf("%s: cleanup.policy %q, want %q", spec.Name, got, policy)
		}
		if got := o.get("spec", "config", "retention.ms"); got != retention {
			t.Errorf("%s: retention.ms %v, want %v", spec.Name, got, retention)
		}
	}
	for name := range topics {
		if !regexp.MustCompile(`^minecart\.partner\.[a-z0-9-]+\.redemptions$`).MatchString(name) {
			t.Errorf("KafkaTopic %s is not in pipelines.Topology", name)
		}
	}
}

// acl is one (principal, resource, pattern, operation) of the script or
// the KafkaUsers, with the script's names.
type acl struct{ user, resource, name, pattern, op string }

// scriptACLs reads the ka --add lines of infra/kafka/init-acls.sh, with
// its loops unrolled for the stages, partner "acme" and the analyst.
func scriptACLs(t *testing.T) []acl {
	data, err := os.ReadFile("../kafka/init-acls.sh")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	stages := strings.Fields(regexp.MustCompile(`for stage in ([a-z ]+); do`).FindStringSubmatch(src)[1])
	analystTopics := strings.Fields(strings.NewReplacer("\\\n", " ").Replace(regexp.MustCompile(`(?s)for t in (.*?); do`).FindStringSubmatch(src)[1]))
	var out []acl
	line := regexp.MustCompile(`(?m)^\s*ka --add --allow-principal "?User:([^ "]+)"? ((?:--operation \w+ )+)--(topic|group|transactional-id|cluster) ?("[^"]*"|\S*)(.*)$`)
	for _, m := range line.FindAllStringSubmatch(src, -1) {
		users := []string{m[1]}
		names := []string{strings.Trim(m[4], `"`)}
		if m[1] == "$user" {
			users = []string{"partner-acme"}
		}
		switch names[0] {
		case "$stage":
			names = stages
		case "$t":
			names = analystTopics
		}
		pattern := "literal"
		if strings.Contains(m[5], "prefixed") {
			pattern = "prefix"
		}
		resource := map[string]string{"topic": "topic", "group": "group", "transactional-id": "transactionalId", "cluster": "cluster"}[m[3]]
		for _, u := range users {
			for _, n := range names {
				n = strings.NewReplacer("$p", "acme").Replace(n)
				if resource == "cluster" {
					n = ""
				}
				for _, op := range regexp.MustCompile(`--operation (\w+)`).FindAllStringSubmatch(m[2], -1) {
					out = append(out, acl{u, resource, n, pattern, op[1]})
				}
			}
		}
	}
	return out
}

// TestUsersMatchInitACLs: the KafkaUsers grant exactly the ACLs of
// infra/kafka/init-acls.sh (minecart, partner acme, analyst).
func TestUsersMatchInitACLs(t *testing.T) {
	want := scriptACLs(t)
	if len(want) < 20 {
		t.Fatalf("read only %d ACLs from init-acls.sh", len(want))
	}
	var got []acl
	for _, u := range ofKind(decode(t, "users.yaml"), "KafkaUser") {
		if u.str("spec", "authentication", "type") != "scram-sha-512" {
			t.Errorf("user %s: not SCRAM-SHA-512", u.str("metadata", "name"))
		}
		for _, a := range u.get("spec", "authorization", "acls").([]any) {
			a := object(a.(map[string]any))
			pattern := a.str("resource", "patternType")
			if pattern == "" {
				pattern = "literal"
			}
			if a.str("resource", "type") == "cluster" {
				pattern = "literal"
			}
			for _, op := range a.get("operations").([]any) {
				got = append(got, acl{u.str("metadata", "name"), a.str("resource", "type"), a.str("resource", "name"), pattern, op.(string)})
			}
		}
	}
	key := func(a acl) string { return strings.Join([]string{a.user, a.resource, a.name, a.pattern, a.op}, " ") }
	ws, gs := sortedKeys(want, key), sortedKeys(got, key)
	if !slices.Equal(ws, gs) {
		t.Fatalf("KafkaUser ACLs differ from init-acls.sh:\nscript: %s\nusers:  %s", strings.Join(ws, "\n        "), strings.Join(gs, "\n        "))
	}
}

func sortedKeys(as []acl, key func(acl) string) []string {
	var out []string
	for _, a := range as {
		out = append(out, key(a))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func envOf(d object) map[string]object {
	out := map[string]object{}
	for _, c := range d.get("spec", "template", "spec", "containers").([]any) {
		for _, e := range object(c.(map[string]any)).get("env").([]any) {
			e := object(e.(map[string]any))
			out[e.str("name")] = e
		}
	}
	return out
}

// TestServices: the ledger is one fenced writer (one replica, Recreate, a
// literal instance id, no autoscaler); the lag-scaled stages never scale
// past their input's partitions; secrets come from Secrets, never a
// literal value.
func TestServices(t *testing.T) {
	objs := decode(t, "minecart.yaml")
	deps := map[string]object{}
	for _, d := range ofKind(objs, "Deployment") {
		deps[d.str("metadata", "name")] = d
	}
	for _, name := range []string{"gateway", "ingest", "scoring", "ledger", "settlement", "sink", "owner"} {
		if deps[name] == nil {
			t.Fatalf("no Deployment %s", name)
		}
	}
	scaled := map[string]object{}
	for _, so := range ofKind(objs, "ScaledObject") {
		scaled[so.str("spec", "scaleTargetRef", "name")] = so
	}
	for _, name := range []string{"ledger", "settlement"} {
		d := deps[name]
		if d.get("spec", "replicas") != 1 || d.str("spec", "strategy", "type") != "Recreate" {
			t.Errorf("%s: want replicas 1 and strategy Recreate (a single fenced writer)", name)
		}
		if e := envOf(d)["MINECART_INSTANCE_ID"]; e == nil || e.str("value") == "" {
			t.Errorf("%s: want a literal MINECART_INSTANCE_ID (a stable transactional id)", name)
		}
		if scaled[name] != nil {
			t.Errorf("%s: must not be autoscaled", name)
		}
	}
	topics := map[string]object{}
	for _, o := range ofKind(decode(t, "topics.yaml"), "KafkaTopic") {
		topics[o.str("spec", "topicName")] = o
	}
	for _, name := range []string{"ingest", "scoring", "sink"} {
		so := scaled[name]
		if so == nil {
			t.Errorf("%s: no ScaledObject", name)
			continue
		}
		trig := object(so.get("spec", "triggers").([]any)[0].(map[string]any))
		if trig.str("type") != "kafka" || trig.str("metadata", "consumerGroup") != name {
			t.Errorf("%s: want a kafka lag trigger on group %s", name, name)
		}
		parts := topics[trig.str("metadata", "topic")].get("spec", "partitions")
		if max := so.get("spec", "maxReplicaCount"); parts == nil || max.(int) > parts.(int) {
			t.Errorf("%s: maxReplicaCount %v over the %v partitions of %s", name, max, parts, trig.str("metadata", "topic"))
		}
	}
	if v := envOf(deps["scoring"])["MINECART_TASKS"].str("value"); v != strconv.Itoa(telemetryPartitions) {
		t.Errorf("scoring: MINECART_TASKS %q, want %d", v, telemetryPartitions)
	}
	// A secret is either an env var from a Secret or a file of a Secret
	// mounted under /run/secrets/ (MINECART_CREATE_KEY is a switch).
	secret := regexp.MustCompile(`PASSWORD|SECRET|_KEY$|_KEY_FILE$`)
	for name, d := range deps {
		mounts := map[string]bool{}
		vols := map[string]bool{}
		for _, v := range d.get("spec", "template", "spec", "volumes").([]any) {
			v := object(v.(map[string]any))
			if v.str("secret", "secretName") != "" {
				vols[v.str("name")] = true
			}
		}
		for _, c := range d.get("spec", "template", "spec", "containers").([]any) {
			for _, m := range object(c.(map[string]any)).get("volumeMounts").([]any) {
				m := object(m.(map[string]any))
				if vols[m.str("name")] {
					mounts[m.str("mountPath")] = true
				}
			}
		}
		for env, e := range envOf(d) {
			v, literal := e.get("value").(string)
			if !secret.MatchString(env) || env == "MINECART_CREATE_KEY" || !literal {
				continue
			}
			if !strings.HasPrefix(v, "/run/secrets/") || !mounts[filepath.Dir(v)] {
				t.Errorf("%s: %s = %q: a literal, not a file of a mounted Secret", name, env, v)
			}
		}
	}
	if len(ofKind(objs, "Secret")) > 0 {
		t.Error("minecart.yaml must not define Secrets (they are created per deployment, docs/scale.md)")
	}
}
