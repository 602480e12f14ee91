package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/gateway"
)

// TestSecretsOutOfReach is issue 14's "embedded Kafka, no credentials"
// row against the embedded stack of `minecart run`, with franz-go (the
// kafka-go side: cmd/partner-example/partner's TestPartnerOnEmbeddedStack):
//   - a client without credentials, or with a wrong password, gets nothing;
//   - the stages run as the generated superuser, whose credentials (and
//     the analyst's and the demo partner's) are in
//     <data-dir>/kafka/credentials.json, 0600, and survive a restart;
//   - the superuser reading minecart.devices finds no usable secret: a
//     request signed with anything on the topic is refused by the gateway,
//     while the box's real secret is accepted;
//   - the analyst reads the analytic topics, not minecart.devices nor raw
//     telemetry;
//   - after Close, every directory of the data dir is 0700 and every file
//     0600 (kfake writes 0755/0644 itself).
func TestSecretsOutOfReach(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := startStack(t, ctx, dir, "")
	closed := false
	defer func() {
		if !closed {
			st.Close()
		}
	}()
	sim := testSim(t)
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	addr := st.Broker.Addrs()[0]

	// The credentials file, as other tools read it.
	credPath := filepath.Join(dir, "kafka", broker.CredentialsFile)
	var file broker.Credentials
	b, err := os.ReadFile(credPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil || file.Mechanism != "SCRAM-SHA-512" || len(file.Users) != 3 {
		t.Fatalf("credentials file: %v %s", err, b)
	}
	super, _ := file.ByRole(broker.RoleSuperuser, "")
	analyst, _ := file.ByRole(broker.RoleAnalyst, "")
	partner, _ := file.ByRole(broker.RolePartner, SimPartner)
	if super.Name != SuperUser || analyst.Name != AnalystUser || partner.Name != "partner-"+SimPartner || len(super.Password) < 40 {
		t.Fatalf("credentials: %+v", file.Users)
	}

	// No credentials, or a wrong password: refused.
	for name, opts := range map[string][]kgo.Opt{
		"no SASL":        nil,
		"wrong password": {SASL(broker.Credential{Name: super.Name, Password: super.Password + "x"})},
		"unknown user":   {SASL(broker.Credential{Name: "mallory", Password: "pw"})},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		tds, err := kadm.NewClient(cl).ListTopics(cctx)
		cancel()
		cl.Close()
		if err == nil {
			t.Errorf("%s: listed %d topics", name, len(tds))
		}
	}

	// The superuser reads the devices topic: sealed secrets only.
	recs := readAll(t, ctx, addr, super, pipelines.TopicDevices)
	if len(recs) < len(sim.Devices()) {
		t.Fatalf("%d device records, want %d", len(recs), len(sim.Devices()))
	}
	dev := sim.Devices()[0]
	var onTopic []byte
	for _, r := range recs {
		for _, d := range sim.Devices() {
			if bytes.Contains(r.Value, d.Secret) {
				t.Fatalf("device %s's secret is on the devices topic", d.DeviceID)
			}
		}
		var d avro.Device
		if err := schemas.SingleObject().Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID == dev.DeviceID {
			onTopic = d.Key
		}
	}
	if !gateway.IsSealed(onTopic) {
		t.Fatalf("the key on the topic: %x", onTopic)
	}
	body := []byte(`{"events":[{"event_id":"x1","seq":1,"time_ms":1762041600000,"lat":31.2,"lon":121.4,"speed_kmh":40,"odometer_km":1000}]}`)
	post := func(key []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+st.HTTPAddr()+"/v1/telemetry", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := gateway.SignHeaders(req.Header, dev.DeviceID, body, gateway.HMACKey(key), time.Now(), gateway.NewNonce()); err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var eb struct{ Error string }
		_ = json.NewDecoder(res.Body).Decode(&eb)
		return res.StatusCode, eb.Error
	}
	for name, k := range map[string][]byte{"whole field": onTopic, "ciphertext": onTopic[24 : 24+32], "first 32 bytes": onTopic[:32]} {
		if code, reason := post(k); code != http.StatusUnauthorized || reason != gateway.ReasonBadSignature {
			t.Errorf("signed with the topic's %s: %d %s", name, code, reason)
		}
	}
	if code, reason := post(dev.Secret); code != http.StatusAccepted {
		t.Fatalf("the box's real secret: %d %s", code, reason)
	}

	// The analyst: analytic topics yes, the device registry and raw telemetry no.
	readAll(t, ctx, addr, analyst, pipelines.TopicTelemetryClean) // fails the test if refused
	readAll(t, ctx, addr, analyst, pipelines.TopicLedgerBlocks)
	for _, topic := range []string{pipelines.TopicDevices, pipelines.TopicTelemetryRaw, pipelines.TopicSettlementLog} {
		if err := fetchErr(ctx, addr, analyst, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("analyst reading %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}
	for _, topic := range []string{pipelines.TopicDevices, pipelines.TopicTelemetryRaw, pipelines.TopicTelemetryClean} {
		if err := fetchErr(ctx, addr, partner, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("partner reading %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}

	// Neither may write a device record (a rogue box for an existing vehicle).
	for _, u := range []broker.Credential{analyst, partner} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), SASL(u), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.ProduceSync(cctx, &kgo.Record{Topic: pipelines.TopicDevices, Key: []byte(dev.DeviceID), Value: []byte("rogue")}).FirstErr()
		cancel()
		cl.Close()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("%s writing %s: %v, want TOPIC_AUTHORIZATION_FAILED", u.Name, pipelines.TopicDevices, err)
		}
	}

	// Restart on the same directory: the same credentials, the old ones work.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	checkPrivate(t, dir)
	st2 := startStack(t, ctx, dir, "")
	defer st2.Close()
	for _, u := range file.Users {
		got, _ := st2.Credentials.ByRole(u.Role, u.Partner)
		if got != u {
			t.Errorf("after restart %s: %+v, want %+v", u.Role, got, u)
		}
	}
	readAll(t, ctx, st2.Broker.Addrs()[0], analyst, pipelines.TopicTelemetryClean) // the old password still works
	if b2, _ := os.ReadFile(credPath); !bytes.Equal(b, b2) {
		t.Errorf("credentials file changed across a restart:\n%s\n%s", b, b2)
	}
}

// checkPrivate: every directory under dir is 0700, every file 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", strings.TrimPrefix(path, dir), info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ledger.key", "devices.key", "kafka/credentials.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if files < 10 {
		t.Fatalf("only %d files in the data directory", files)
	}
}

// readAll reads topic from the start for a few seconds as user u (the
// topics read here are complete by then); an error (not authorized)
// fails the test.
func readAll(t *testing.T, ctx context.Context, addr string, u broker.Credential, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), SASL(u), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out []*kgo.Record
	for cctx.Err() == nil {
		fs := cl.PollFetches(cctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("%s reading %s: %v", u.Name, topic, e.Err)
			}
		}
	}
	return out
}

// fetchErr is the error u gets fetching topic (nil: it may).
func fetchErr(ctx context.Context, addr string, u broker.Credential, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), SASL(u))
	if err != nil {
		return err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(cctx, topic)
	if err != nil {
		return err
	}
	return ends.Error()
}
