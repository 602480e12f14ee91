package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
)

func quiet() *slog.Logger { return newLogger(io.Discard, slog.LevelError) }

func TestFlagsAndEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want Kafka
		proc process
	}{
		{
			name: "defaults",
			want: Kafka{Brokers: "127.0.0.1:9092", CreateTopics: true},
			proc: process{MetricsAddr: "127.0.0.1:9199"},
		},
		{
			name: "environment",
			env: map[string]string{
				"MINECART_BROKERS": "kafka:9092", "MINECART_REGISTRY_URL": "http://sr:8081",
				"MINECART_REGISTRY_USER": "u", "MINECART_REGISTRY_PASSWORD": "p",
				"MINECART_KAFKA_SASL": "scram-sha-512:minecart:pw", "MINECART_KAFKA_TLS": "true",
				"MINECART_KAFKA_TLS_CA": "/ca.pem", "MINECART_CREATE_TOPICS": "false",
				"MINECART_INSTANCE_ID": "ingest-0", "MINECART_METRICS_ADDR": "0.0.0.0:9100",
				"MINECART_LOG_LEVEL": "debug",
			},
			want: Kafka{Brokers: "kafka:9092", RegistryURL: "http://sr:8081", RegistryUser: "u", RegistryPassword: "p",
				SASL: "scram-sha-512:minecart:pw", TLS: true, TLSCAFile: "/ca.pem", InstanceID: "ingest-0"},
			proc: process{MetricsAddr: "0.0.0.0:9100", LogLevel: slog.LevelDebug},
		},
		{
			name: "command line wins",
			args: []string{"-brokers", "a:1,b:2", "--kafka-sasl", "plain:x:y", "-instance-id", "i1", "-log-level", "warn"},
			env:  map[string]string{"MINECART_BROKERS": "kafka:9092", "MINECART_KAFKA_SASL": "scram-sha-512:m:p", "MINECART_INSTANCE_ID": "i0"},
			want: Kafka{Brokers: "a:1,b:2", SASL: "plain:x:y", InstanceID: "i1", CreateTopics: true},
			proc: process{MetricsAddr: "127.0.0.1:9199", LogLevel: slog.LevelWarn},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			var k Kafka
			var p process
			k.Register(fs)
			k.RegisterInstanceID(fs)
			p.Register(fs, "127.0.0.1:9199")
			if err := parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if k != tc.want {
				t.Errorf("kafka %+v, want %+v", k, tc.want)
			}
			if p.MetricsAddr != tc.proc.MetricsAddr || p.LogLevel != tc.proc.LogLevel {
				t.Errorf("process %+v, want %+v", p, tc.proc)
			}
		})
	}
	t.Run("bad env", func(t *testing.T) {
		t.Setenv("MINECART_CREATE_TOPICS", "maybe")
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		var k Kafka
		k.Register(fs)
		if err := parse(fs, nil); err == nil {
			t.Fatal("MINECART_CREATE_TOPICS=maybe accepted")
		}
	})
}

func TestBrokerList(t *testing.T) {
	k := Kafka{Brokers: " a:1, ,b:2,"}
	if got := k.BrokerList(); !slices.Equal(got, []string{"a:1", "b:2"}) {
		t.Fatalf("got %q", got)
	}
	if _, err := (&Kafka{Brokers: " , "}).Config(t.Context(), quiet(), nil); err == nil {
		t.Fatal("no brokers accepted")
	}
}

func TestParseSASL(t *testing.T) {
	for _, tc := range []struct {
		spec, name string // name "": error
	}{
		{"scram-sha-512:minecart:pw", "SCRAM-SHA-512"},
		{"SCRAM-SHA-512:minecart:pw", "SCRAM-SHA-512"},
		{"scram-sha-256:minecart:pw", "SCRAM-SHA-256"},
		{"plain:minecart:pw", "PLAIN"},
		{"scram-sha-512:minecart:p:w:d", "SCRAM-SHA-512"}, // colons in the password
		{"", ""},
		{"scram-sha-512", ""},
		{"scram-sha-512:minecart", ""},
		{"scram-sha-512::pw", ""},
		{"scram-sha-512:minecart:", ""},
		{"gssapi:minecart:pw", ""},
		{"oauthbearer:minecart:pw", ""},
	} {
		m, err := ParseSASL(tc.spec)
		switch {
		case tc.name == "" && err == nil:
			t.Errorf("%q: accepted as %s", tc.spec, m.Name())
		case tc.name != "" && err != nil:
			t.Errorf("%q: %v", tc.spec, err)
		case tc.name != "" && m.Name() != tc.name:
			t.Errorf("%q: mechanism %s, want %s", tc.spec, m.Name(), tc.name)
		}
	}
}

// saslCluster starts kfake with SASL enabled and one superuser.
func saslCluster(t *testing.T, mech, user, pass string, more ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.Ports(0), kfake.EnableSASL(), kfake.Superuser(mech, user, pass),
	}, more...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// TestConfigSASL connects with each mechanism to a broker that requires
// it: Config creates every topic of the topology (so it spoke to the broker
// authenticated), and a producer and a table built from the returned
// Config write and read a record. Wrong or missing credentials fail.
func TestConfigSASL(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			brokers := saslCluster(t, mech, "minecart", "pw")
			k := Kafka{Brokers: brokers[0], SASL: mech + ":minecart:pw", CreateTopics: true, InstanceID: "t-0"}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cfg, err := k.Config(ctx, quiet(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.InstanceID != "t-0" || len(cfg.ClientOptions) != 1 || cfg.Serde == nil {
				t.Fatalf("config %+v", cfg)
			}
			assertTopology(ctx, t, cfg)
			roundTrip(ctx, t, cfg)

			for _, bad := range []string{"", mech + ":minecart:wrong", mech + ":intruder:pw"} {
				bctx, bcancel := context.WithTimeout(t.Context(), 5*time.Second)
				k := Kafka{Brokers: brokers[0], SASL: bad, CreateTopics: true}
				start := time.Now()
				_, err := k.Config(bctx, quiet(), nil)
				t.Logf("sasl %q: %v after %v", bad, err, time.Since(start))
				if err == nil {
					t.Errorf("sasl %q: connected", bad)
				}
				bcancel()
			}
		})
	}
}

// assertTopology checks, over cfg's connection, that every topic of the
// topology exists with its partitions.
func assertTopology(ctx context.Context, t *testing.T, cfg kafka.Config) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pipelines.Topology {
		d, ok := tds[s.Name]
		if !ok || d.Err != nil || int32(len(d.Partitions)) != s.Partitions {
			t.Errorf("topic %s: %+v, want %d partitions", s.Name, d, s.Partitions)
		}
	}
}

// roundTrip writes a device record with a producer and reads it with a
// table, both made from cfg.
func roundTrip(ctx context.Context, t *testing.T, cfg kafka.Config) {
	t.Helper()
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ProduceSync(ctx, pipelines.TopicDevices, []byte("dev-1"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	tb, err := kafka.NewTable(ctx, cfg, pipelines.TopicDevices)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if err := tb.WaitCaught(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := tb.Get("dev-1"); !ok || string(v) != "v" {
		t.Fatalf("table: %q %v", v, ok)
	}
}

// TestConfigTLS connects over TLS with SCRAM to a broker whose certificate
// is signed by the CA given in -kafka-tls-ca; without the CA the
// certificate is refused.
func TestConfigTLS(t *testing.T) {
	caFile, serverTLS := testCA(t)
	brokers := saslCluster(t, "SCRAM-SHA-512", "minecart", "pw", kfake.TLS(serverTLS))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	k := Kafka{Brokers: brokers[0], SASL: "scram-sha-512:minecart:pw", TLSCAFile: caFile, CreateTopics: true}
	cfg, err := k.Config(ctx, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertTopology(ctx, t, cfg)

	bctx, bcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer bcancel()
	k = Kafka{Brokers: brokers[0], SASL: "scram-sha-512:minecart:pw", TLS: true, CreateTopics: true}
	if _, err := k.Config(bctx, quiet(), nil); err == nil {
		t.Error("certificate of an unknown CA accepted")
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.pem"), writeFile(t, "not a pem")} {
		k := Kafka{Brokers: brokers[0], TLSCAFile: bad}
		if _, err := k.ClientOptions(); err == nil {
			t.Errorf("CA file %s accepted", bad)
		}
	}
}

func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA makes a CA (written as PEM to a file) and a server certificate for
// 127.0.0.1 signed by it.
func testCA(t *testing.T) (string, *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "minecart test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestConfigRegistry: with a registry URL and credentials the Serde uses
// the Confluent wire format (magic byte 0 and a schema id the registry
// handed out), and wrong credentials fail at start.
func TestConfigRegistry(t *testing.T) {
	reg := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("sr:secret"))))
	defer reg.Close()
	brokers := saslCluster(t, "SCRAM-SHA-512", "minecart", "pw")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	k := Kafka{Brokers: brokers[0], SASL: "scram-sha-512:minecart:pw", RegistryURL: reg.URL(), RegistryUser: "sr", RegistryPassword: "secret"}
	cfg, err := k.Config(ctx, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	serde := cfg.Serde
	b, err := serde.Encode(schemas.Watermark, map[string]any{"task": int32(0), "tasks": int32(1), "closed_through_ms": time.UnixMilli(0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 5 || b[0] != 0 {
		t.Fatalf("not Confluent framed: % x", b)
	}
	k.RegistryPassword = "wrong"
	if _, err := k.Config(ctx, quiet(), nil); err == nil {
		t.Fatal("wrong registry password accepted")
	}
}
