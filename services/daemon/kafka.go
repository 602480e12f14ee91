package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/registry"
)

// Kafka is how a process reaches Kafka and the Schema Registry. The zero
// value is not usable: Register sets the defaults, or fill Brokers.
type Kafka struct {
	// Brokers are the seed brokers, host:port, comma-separated.
	Brokers string
	// RegistryURL is the Schema Registry (comma-separated URLs); empty:
	// Avro single-object encoding and no registry.
	RegistryURL string
	// RegistryUser and RegistryPassword are the registry's basic auth.
	RegistryUser, RegistryPassword string
	// SASL is "mechanism:user:password" with mechanism scram-sha-512,
	// scram-sha-256 or plain (the password may contain colons); empty:
	// no authentication.
	SASL string
	// TLS connects to the brokers over TLS (system roots unless TLSCAFile).
	TLS bool
	// TLSCAFile is a PEM file of the CAs that sign the brokers'
	// certificates; setting it implies TLS.
	TLSCAFile string
	// CreateTopics makes Config create the missing topics of
	// pipelines.Topology (harmless when they exist).
	CreateTopics bool
	// InstanceID is kafka.Config.InstanceID (RegisterInstanceID).
	InstanceID string
}

// Register adds the connection flags to fs: brokers, registry-url,
// registry-user, registry-password, kafka-sasl, kafka-tls, kafka-tls-ca,
// create-topics.
func (k *Kafka) Register(fs *flag.FlagSet) {
	fs.StringVar(&k.Brokers, "brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	fs.StringVar(&k.RegistryURL, "registry-url", "", "Schema Registry URL(s), comma-separated (empty: Avro single-object encoding)")
	fs.StringVar(&k.RegistryUser, "registry-user", "", "Schema Registry basic-auth user")
	fs.StringVar(&k.RegistryPassword, "registry-password", "", "Schema Registry basic-auth password (prefer the environment)")
	fs.StringVar(&k.SASL, "kafka-sasl", "", "Kafka SASL as mechanism:user:password, mechanism scram-sha-512, scram-sha-256 or plain (empty: none; prefer the environment)")
	fs.BoolVar(&k.TLS, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&k.TLSCAFile, "kafka-tls-ca", "", "PEM file of the CAs of the brokers' certificates (implies -kafka-tls; empty: system roots)")
	fs.BoolVar(&k.CreateTopics, "create-topics", true, "create the missing minecart topics at start")
}

// RegisterInstanceID adds the instance-id flag of processes that run a
// transactional stage.
func (k *Kafka) RegisterInstanceID(fs *flag.FlagSet) {
	fs.StringVar(&k.InstanceID, "instance-id", "", "this replica's name: its transactional ids and static group membership; stable across its restarts, unique among live replicas (default: host name + the lowest replica slot free on this host, host-0, host-1, ...)")
}

// BrokerList returns the seed brokers, without blanks.
func (k *Kafka) BrokerList() []string {
	var out []string
	for _, b := range strings.Split(k.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// ClientOptions returns the franz-go options of the connection settings:
// SASL and TLS (none when neither is set).
func (k *Kafka) ClientOptions() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.SASL != "" {
		mech, err := ParseSASL(k.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(mech))
	}
	if k.TLS || k.TLSCAFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLSCAFile != "" {
			pem, err := os.ReadFile(k.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka-tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka-tls-ca: no certificate in %s", k.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	return opts, nil
}

// Config returns the pipelines configuration of the process (brokers,
// client options, instance id, log and reg) with the Serde every component
// shares (cfg.Serde): Confluent framing with the registry when RegistryURL is set
// (NewSerde registers the embedded schemas there), else single-object.
// With CreateTopics it then creates the missing topics of
// pipelines.Topology, which also proves that the brokers answer and accept
// the credentials.
func (k *Kafka) Config(ctx context.Context, log *slog.Logger, reg prometheus.Registerer) (kafka.Config, error) {
	brokers := k.BrokerList()
	if len(brokers) == 0 {
		return kafka.Config{}, errors.New("brokers: none given")
	}
	opts, err := k.ClientOptions()
	if err != nil {
		return kafka.Config{}, err
	}
	serde, err := registry.NewSerde(ctx, registry.Config{URL: k.RegistryURL, User: k.RegistryUser, Password: k.RegistryPassword})
	if err != nil {
		return kafka.Config{}, fmt.Errorf("schema registry: %w", err)
	}
	cfg := kafka.Config{
		Brokers: brokers, Logger: log, Registerer: reg, Serde: serde,
		InstanceID: k.InstanceID, ClientOptions: opts,
	}
	if err := cfg.Validate(); err != nil {
		return kafka.Config{}, err
	}
	if k.CreateTopics {
		if err := kafka.EnsureTopicsWith(ctx, cfg, pipelines.Topology); err != nil {
			return kafka.Config{}, fmt.Errorf("create topics: %w", err)
		}
	}
	return cfg, nil
}

// ParseSASL reads "mechanism:user:password": mechanism scram-sha-512,
// scram-sha-256 or plain (any case); the password is everything after the
// second colon, so it may contain colons. User and password are required.
func ParseSASL(spec string) (sasl.Mechanism, error) {
	mech, rest, ok := strings.Cut(spec, ":")
	user, pass, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || user == "" || pass == "" {
		return nil, errors.New("kafka-sasl: want mechanism:user:password")
	}
	switch strings.ToLower(mech) {
	case "scram-sha-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "plain":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("kafka-sasl: unknown mechanism %q (scram-sha-512, scram-sha-256, plain)", mech)
}
