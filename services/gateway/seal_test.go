package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// TestSealOpen: a sealed secret opens only with its key, for its device,
// untouched; nothing else opens.
func TestSealOpen(t *testing.T) {
	k, _ := GenerateRegistryKey()
	other, _ := GenerateRegistryKey()
	secret := bytes.Repeat([]byte{0xab}, 32)
	sealed := k.Seal("d1", secret)
	if len(sealed) != 72 || !IsSealed(sealed) || bytes.Contains(sealed, secret[:8]) {
		t.Fatalf("sealed %d bytes %x", len(sealed), sealed)
	}
	if got, err := k.Open("d1", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %x %v", got, err)
	}
	if again := k.Seal("d1", secret); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one secret are equal: the nonce is not random")
	}
	flipped := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	for name, tc := range map[string]struct {
		key    *RegistryKey
		device string
		sealed []byte
	}{
		"other device":     {k, "d2", sealed},
		"other key":        {other, "d1", sealed},
		"plaintext":        {k, "d1", secret},
		"plaintext 72":     {k, "d1", bytes.Repeat([]byte{1}, 72)},
		"flipped magic":    {k, "d1", flipped(0)},
		"flipped key id":   {k, "d1", flipped(5)},
		"flipped nonce":    {k, "d1", flipped(15)},
		"flipped body":     {k, "d1", flipped(40)},
		"flipped tag":      {k, "d1", flipped(71)},
		"truncated":        {k, "d1", sealed[:60]},
		"empty":            {k, "d1", nil},
		"header only":      {k, "d1", sealed[:sealHeader]},
		"extra byte":       {k, "d1", append(bytes.Clone(sealed), 0)},
		"magic, no secret": {k, "d1", []byte(sealMagic)},
	} {
		if got, err := tc.key.Open(tc.device, tc.sealed); !errors.Is(err, ErrNotSealed) || got != nil {
			t.Errorf("%s: opened %x, %v", name, got, err)
		}
	}
}

// FuzzOpen: no input opens (or panics) without the key's own seal.
func FuzzOpen(f *testing.F) {
	k, _ := GenerateRegistryKey()
	f.Add("d1", k.Seal("d1", make([]byte, 32)))
	f.Add("d1", []byte("MCS1"))
	f.Fuzz(func(t *testing.T, device string, b []byte) {
		if got, err := k.Open(device, b); err == nil && !bytes.Equal(got, make([]byte, 32)) {
			t.Fatalf("opened %x from %x", got, b)
		}
	})
}

// TestRegistryKeyFile: created 0600 once, the same key after, refused when
// others may read it or when it is not a key.
func TestRegistryKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "devices.key")
	k1, err := LoadOrCreateRegistryKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want %v", p, st.Mode().Perm(), err, want)
		}
	}
	k2, err := LoadOrCreateRegistryKey(path)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("reload: %v %v", k2, err)
	}
	if got, err := k2.Open("d", k1.Seal("d", make([]byte, 32))); err != nil || len(got) != 32 {
		t.Fatalf("reloaded key does not open: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateRegistryKey(path); err == nil {
		t.Fatal("a 0644 key file was accepted")
	}
	os.WriteFile(path, []byte("not hex\n"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := LoadRegistryKey(path); err == nil {
		t.Fatal("a garbage key file was accepted")
	}
}

// TestTopicCarriesNoSecret is issue 14's attack on the devices topic: a
// client reading minecart.devices gets the sealed secret, and a request
// signed with anything found there is refused with nothing produced.
// A plaintext record (written before sealing) is refused as not sealed
// until `minecart devices seal` seals it in place; a gateway without the
// registry key refuses every HMAC device.
func TestTopicCarriesNoSecret(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret := f.hmacKey.Secret
	recs, err := kafkatest.ReadCommitted(ctx, f.brokers, pipelines.TopicDevices)
	if err != nil {
		t.Fatal(err)
	}
	var onTopic []byte
	for _, r := range recs {
		if bytes.Contains(r.Value, secret) {
			t.Fatalf("the devices topic carries d1's secret: %x", r.Value)
		}
		var d avro.Device
		if err := schemas.SingleObject().Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID == "d1" {
			onTopic = d.Key
		}
	}
	if !IsSealed(onTopic) {
		t.Fatalf("d1's key on the topic: %x", onTopic)
	}
	body := jsonBody(t, events("", 2, 0))
	rawCount := func() int {
		recs, err := kafkatest.ReadCommitted(ctx, f.brokers, pipelines.TopicTelemetryRaw)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	raw := rawCount()
	for name, k := range map[string][]byte{
		"sealed bytes":       onTopic,
		"sealed ciphertext":  onTopic[sealHeader:],
		"sealed first 32":    onTopic[:32],
		"sealed ciphertext0": onTopic[sealHeader : sealHeader+32],
	} {
		if r := f.post(t, "d1", HMACKey(k), body, nil, ""); r.status != http.StatusUnauthorized || r.body.Error != ReasonBadSignature {
			t.Errorf("signed with the topic's %s: %d %+v", name, r.status, r.body)
		}
	}
	if n := rawCount(); n != raw {
		t.Fatalf("refused requests produced %d raw records", n-raw)
	}
	if r := f.post(t, "d1", f.hmacKey, body, nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("the real secret: %d %+v", r.status, r.body)
	}
	if n := rawCount(); n <= raw {
		t.Fatal("the accepted batch is not on the raw topic")
	}

	// An old plaintext record: refused, not silently accepted.
	old := bytes.Repeat([]byte{0x42}, 32)
	v, err := schemas.SingleObject().Marshal(&avro.Device{ID: "old", VehicleID: "v-old", VehicleTZ: "UTC", Auth: avro.AuthKind(AuthHMAC),
		Key: old, Status: avro.Status(StatusActive), CreatedMs: t0, UpdatedMs: t0})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, f.brokers, kafka.Output{Topic: pipelines.TopicDevices, Key: []byte("old"), Value: v})
	if err := f.srv.WaitDevices(ctx, []string{"old"}); err != nil {
		t.Fatal(err)
	}
	if r := f.post(t, "old", HMACKey(old), body, nil, ""); r.status != http.StatusUnauthorized || r.body.Error != ReasonNotSealed {
		t.Fatalf("plaintext record: %d %+v", r.status, r.body)
	}
	// f.devices follows the topic with its own reader: wait until it has
	// the record the gateway saw.
	if err := f.devices.table.Wait(ctx, "old", func(_ []byte, ok bool) bool { return ok }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.devices.Get(ctx, "old"); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("Get of a plaintext record: %v", err)
	}
	res, err := f.devices.Seal(ctx)
	if err != nil || len(res.Sealed) != 1 || res.Sealed[0] != "old" || len(res.Already) != 1 {
		t.Fatalf("seal: %+v %v", res, err)
	}
	d, err := f.devices.Get(ctx, "old")
	if err != nil || !bytes.Equal(d.Key, old) || !IsSealed(d.Sealed) {
		t.Fatalf("sealed record: %+v %v", d, err)
	}
	var ok bool
	for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ok = f.post(t, "old", HMACKey(old), body, nil, "").status == http.StatusAccepted
	}
	if !ok {
		t.Fatal("the sealed record's device is still refused")
	}
	// Revocation without the key keeps the sealed secret as it was.
	nokey := NewDevices(f.devices.producer, f.devices.table, nil, nil, f.now)
	if _, err := nokey.Add(ctx, NewDevice{ID: "d9", VehicleID: "v9", VehicleTZ: "UTC", Auth: AuthHMAC}); err == nil {
		t.Fatal("an HMAC device was added without the registry key")
	}
	if _, err := nokey.Revoke(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if d, err := f.devices.Get(ctx, "old"); err != nil || !bytes.Equal(d.Key, old) || d.Status != StatusRevoked {
		t.Fatalf("revoked without the key: %+v %v", d, err)
	}
}

// TestGatewayWithoutKey: with no registry key, HMAC devices are refused
// (Ed25519 devices still work).
func TestGatewayWithoutKey(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DeviceKey = nil })
	body := jsonBody(t, events("", 2, 0))
	if r := f.post(t, "d1", f.hmacKey, body, nil, ""); r.status != http.StatusUnauthorized || r.body.Error != ReasonNotSealed {
		t.Fatalf("HMAC device, gateway without key: %d %+v", r.status, r.body)
	}
	if r := f.post(t, "d2", f.edKey, jsonBody(t, events("v2", 2, 0)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("Ed25519 device: %d %+v", r.status, r.body)
	}
}

// TestSealWorkedExample: the worked example of docs/security.md
// is what Seal computes (checked there against Python's
// cryptography.AESGCM as a second implementation).
func TestSealWorkedExample(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	k, err := NewRegistryKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	var nonce [sealNonceLen]byte
	for i := range nonce {
		nonce[i] = byte(i + 1)
	}
	sealed := k.sealNonce("box-7", bytes.Repeat([]byte{0xaa}, 32), nonce)
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"key id " + k.ID(), hex.EncodeToString(sealed)} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/security.md lacks %q", want)
		}
	}
	if got, err := k.Open("box-7", sealed); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xaa}, 32)) {
		t.Fatalf("open: %x %v", got, err)
	}
}
