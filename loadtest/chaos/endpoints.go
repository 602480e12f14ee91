// Package chaos is minecart's chaos suite: it drives the real binaries
// (`minecart run`, `minecart broker`, `minecart clickhouse`) as child
// processes, kills them with SIGKILL (or stops them with SIGSTOP) at random
// moments, restarts them on the same data directories, and compares what
// the interrupted pipeline produced with an uninterrupted run of the same
// seed, reading the results only over public interfaces: Kafka topics with a
// read_committed franz-go consumer, `minecart ledger verify` and `export`,
// ClickHouse's HTTP interface and the summary `minecart run --once` prints.
// Every difference is reported by name (which vehicle-day, which account,
// which table), see Diff. docs/reliability.md describes the scenarios and
// their measured costs; `make chaos` runs the long form, `make test` the
// short one.
package chaos

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/infra/chserver"
	"github.com/minecart/minecart/services/daemon"
)

// Endpoints are every address and credential the harness uses to reach a
// run's Kafka and ClickHouse. This is the one place to adapt when the
// embedded broker requires SASL or the embedded ClickHouse requires a user:
// EndpointsFor reads them, and every client, child process and check of the
// suite gets them from here.
type Endpoints struct {
	// Kafka is the broker's host:port.
	Kafka string
	// KafkaSASL is "mechanism:user:password" (daemon.ParseSASL; empty:
	// no SASL).
	KafkaSASL string
	// ClickHouse is the HTTP interface's host:port.
	ClickHouse string
	// ClickHouseUser and ClickHousePassword authenticate HTTP queries
	// (empty: the default user).
	ClickHouseUser, ClickHousePassword string
}

// Credential files in a pipeline's data directory. The embedded broker
// (`minecart run`, and `minecart broker --data-dir DIR/kafka`) generates
// its SCRAM users into DIR/kafka/credentials.json on its first start
// (infra/broker.CredentialsFile); the suite connects as its superuser.
// The embedded ClickHouse (`minecart run`, and `minecart clickhouse
// --data-dir DIR/clickhouse`) generates its users into
// DIR/clickhouse/users.json (infra/chserver); the suite connects as its
// writer, which the sink needs and which may also read.
var (
	kafkaCredFile = filepath.Join("kafka", broker.CredentialsFile)
	chUsersFile   = filepath.Join("clickhouse", "users.json")
)

// EndpointsFor returns the endpoints of the pipeline whose data directory
// is dataDir, listening on kafkaAddr and chAddr.
func EndpointsFor(dataDir, kafkaAddr, chAddr string) Endpoints {
	e := Endpoints{Kafka: kafkaAddr, ClickHouse: chAddr}
	if b, err := os.ReadFile(filepath.Join(dataDir, kafkaCredFile)); err == nil {
		var c broker.Credentials
		if json.Unmarshal(b, &c) == nil {
			if u, ok := c.ByRole(broker.RoleSuperuser, ""); ok {
				e.KafkaSASL = strings.ToLower(c.Mechanism) + ":" + u.Name + ":" + u.Password
			}
		}
	}
	if users, err := chserver.ReadUsersFile(filepath.Join(dataDir, chUsersFile)); err == nil {
		if u, ok := chserver.FindUser(users, chserver.UserWriter); ok {
			e.ClickHouseUser, e.ClickHousePassword = u.Name, u.Password
		}
	}
	return e
}

// KafkaOpts are the franz-go options that connect to the broker.
func (e Endpoints) KafkaOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(e.Kafka)}
	if e.KafkaSASL != "" {
		mech, err := daemon.ParseSASL(e.KafkaSASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// ServiceEnv is the environment of a service main or a `minecart` admin
// command (ledger, devices, accounts) that connects to this Kafka.
func (e Endpoints) ServiceEnv() []string {
	env := []string{"MINECART_BROKERS=" + e.Kafka}
	if e.KafkaSASL != "" {
		env = append(env, "MINECART_KAFKA_SASL="+e.KafkaSASL)
	}
	return env
}

// ClickHouseDSN is the sink's and owner API's DSN.
func (e Endpoints) ClickHouseDSN() string {
	if e.ClickHouseUser != "" {
		return "http://" + e.ClickHouseUser + ":" + e.ClickHousePassword + "@" + e.ClickHouse + "/default"
	}
	return "http://" + e.ClickHouse + "/default"
}

// BrokerArgs are the arguments of `minecart broker` serving a Kafka log
// directory on e.Kafka: it takes its users from the directory's
// credentials file (generating it on a first start).
func (e Endpoints) BrokerArgs(kafkaDir string) []string {
	return []string{"broker", "--addr", e.Kafka, "--data-dir", kafkaDir}
}

// ClickHouseArgs are the arguments of `minecart clickhouse` serving chDir
// on e.ClickHouse.
func (e Endpoints) ClickHouseArgs(chDir string) []string {
	return []string{"clickhouse", "--addr", e.ClickHouse, "--data-dir", chDir}
}

// authorize adds the ClickHouse credentials to an HTTP query.
func (e Endpoints) authorize(req *http.Request) {
	if e.ClickHouseUser != "" {
		req.Header.Set("X-ClickHouse-User", e.ClickHouseUser)
		req.Header.Set("X-ClickHouse-Key", e.ClickHousePassword)
	}
}
