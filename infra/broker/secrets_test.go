package broker_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// TestCredentialsFile: generated once (0600 in a 0700 directory), the
// same after; a user added later is appended, the others keep their
// passwords; a file made readable by others is made 0600 again; a file of
// another mechanism is refused.
func TestCredentialsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	path := filepath.Join(dir, broker.CredentialsFile)
	want := []broker.Credential{{Name: "minecart", Role: broker.RoleSuperuser}, {Name: "analyst", Role: broker.RoleAnalyst}}
	c1, err := broker.LoadOrCreateCredentials(path, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.Users) != 2 || c1.Mechanism != broker.Mechanism || len(c1.Users[0].Password) != 43 || c1.Users[0].Password == c1.Users[1].Password {
		t.Fatalf("generated: %+v", c1)
	}
	for p, mode := range map[string]fs.FileMode{path: 0o600, dir: 0o700} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want %v", p, st.Mode().Perm(), err, mode)
		}
	}
	c2, err := broker.LoadOrCreateCredentials(path, want)
	if err != nil || !equal(c1, c2) {
		t.Fatalf("reloaded: %+v %v, want %+v", c2, err, c1)
	}
	c3, err := broker.LoadOrCreateCredentials(path, append(want, broker.Credential{Name: "partner-acme", Role: broker.RolePartner, Partner: "acme"}))
	if err != nil || len(c3.Users) != 3 || c3.Users[0] != c1.Users[0] || c3.Users[1] != c1.Users[1] {
		t.Fatalf("with a partner: %+v %v", c3, err)
	}
	if u, ok := c3.ByRole(broker.RolePartner, "acme"); !ok || u.Name != "partner-acme" {
		t.Fatalf("partner acme: %+v", u)
	}
	var onDisk broker.Credentials
	if b, _ := os.ReadFile(path); json.Unmarshal(b, &onDisk) != nil || !equal(onDisk, c3) {
		t.Fatalf("file: %+v", onDisk)
	}
	os.Chmod(path, 0o644)
	if _, err := broker.LoadOrCreateCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after reload: %v", st.Mode().Perm())
	}
	os.WriteFile(path, []byte(`{"mechanism":"PLAIN","users":[]}`), 0o600)
	if _, err := broker.LoadOrCreateCredentials(path, want); err == nil || !strings.Contains(err.Error(), "mechanism") {
		t.Fatalf("PLAIN file: %v", err)
	}
}

func equal(a, b broker.Credentials) bool {
	if a.Mechanism != b.Mechanism || len(a.Users) != len(b.Users) {
		return false
	}
	for i := range a.Users {
		if a.Users[i] != b.Users[i] {
			return false
		}
	}
	return true
}

// TestDataDirPrivate: kfake writes its files 0644 in 0755 directories;
// the broker's data directory is 0700 while it runs (nobody else can
// enter it) and, after Close, every directory is 0700 and every file 0600
// — also those of a directory written before (an upgrade), fixed at Start.
func TestDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	// A directory as an older minecart left it.
	old := filepath.Join(dir, "partitions", "old")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(old, "x.log"), []byte("x"), 0o644)

	b := start(t, dir)
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir while running: %v %v", st.Mode().Perm(), err)
	}
	if st, err := os.Stat(filepath.Join(old, "x.log")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("an old file after Start: %v %v", st.Mode().Perm(), err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: pipelines.TopicDevices, Key: []byte{byte(i)}, Value: []byte("secret")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || files < 5 {
		t.Fatalf("walk: %v, %d files", err, files)
	}
}

// TestKcatSCRAM: kcat (librdkafka, an independent client: the tool of
// issue 14's report) logs in with SCRAM-SHA-512 and lists only what the
// user may describe; without credentials or with a wrong password it gets
// no metadata (librdkafka.go).
func TestKcatSCRAM(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat)")
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Users: []broker.User{{Name: "svc", Password: "svc-pw", Super: true},
			{Name: "reader", Password: "reader-pw", ACLs: []broker.ACL{{Resource: "topic", Name: pipelines.TopicLedgerBlocks, Operation: "Describe"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopicsWith(ctx, kafka.Config{Brokers: b.Addrs(), ClientOptions: []kgo.Opt{
		kgo.SASL(kscram.Auth{User: "svc", Pass: "svc-pw"}.AsSha512Mechanism())}}, pipelines.Topology); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) (string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, kcat, append([]string{"-b", b.Addrs()[0], "-L", "-m", "3"}, args...)...).CombinedOutput()
		return string(out), err
	}
	sasl := func(user, pass string) []string {
		return []string{"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + pass}
	}
	out, err := list(sasl("svc", "svc-pw")...)
	if err != nil || strings.Count(out, "topic \"") != len(pipelines.Topology) {
		t.Fatalf("kcat as the superuser: %v\n%s", err, out)
	}
	out, err = list(sasl("reader", "reader-pw")...)
	if err != nil || strings.Count(out, "topic \"") != 1 || !strings.Contains(out, pipelines.TopicLedgerBlocks) {
		t.Fatalf("kcat as reader: %v\n%s", err, out)
	}
	for name, args := range map[string][]string{"no credentials": nil, "wrong password": sasl("reader", "nope")} {
		if out, err := list(args...); err == nil || strings.Contains(out, "topic \"") {
			t.Errorf("kcat with %s: %v\n%s", name, err, out)
		}
	}
}
