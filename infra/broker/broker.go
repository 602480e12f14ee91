// Package broker runs minecart's embedded Kafka broker: kfake (from
// franz-go) speaking the real Kafka wire protocol on a TCP address, with its
// log, groups and transactions persisted in a data directory and reloaded on
// restart, and optionally SASL/SCRAM users and enforced ACLs (Config.Users:
// the partner ACLs of the production cluster). It knows nothing of
// minecart's topics: its clients create them (pipelines/kafka.EnsureTopics).
//
// kfake differs from Apache Kafka in ways met while building minecart (each
// checked in this package's or the pipelines package's tests):
//   - It always has a single process; there is no replication, so acks=all
//     means "written to this process's log" (fsynced only with SyncWrites).
//   - group.min.session.timeout.ms defaults to 6 s as in Kafka; this package
//     lowers it to MinSessionTimeout (default 250 ms) so tests can use short
//     session timeouts. Production Kafka keeps its own setting.
//   - Compaction runs on a timer inside the process (or Cluster.Compact);
//     like Kafka it never removes the last batch of a partition.
//   - kfake's Close returns no error: persistence errors are only logged
//     (failed writes of the data directory at warn level). Close here
//     reports the first such message logged while shutting down, so a
//     failed save is not silent.
//   - A transaction open when the broker is closed stays open after the
//     restart and is aborted when its timeout expires, as in Kafka
//     (TestRestartKeepsData). After a crash (kill -9) kfake drops it on
//     reload without writing an abort marker, which leaves a dangling
//     tail; Start writes the missing markers before it admits clients
//     (dangling.go, TestRestartAfterKill, docs/reliability.md): a COMMIT,
//     written to disk before kfake loads, when another partition holds the
//     transaction's COMMIT marker (kfake's EndTxn writes them one
//     partition at a time and a crash can cut it short: commitmarker.go,
//     TestRestartCompletesCommit), else an abort.
//   - Every EndTxn bumps the producer epoch (KIP-890 part 2, as Kafka 4).
//   - kfake persists SASL users and ACLs in the data directory (sasl.json,
//     acls.json). On a reload it replaces the seed users (kfake.User,
//     kfake.Superuser) with the saved ones and does not apply the seed
//     ACLs, which it applies only to a new directory. Start therefore
//     removes those two files when Config.Users is set and creates the
//     ACLs itself after the start (TestUsersAcrossRestart).
//   - franz-go's transact session detects KIP-447 from the TxnOffsetCommit
//     response; a transaction that commits no offsets makes it hold its
//     rebalance lock 500 ms (pipelines/kafka skips such empty transactions).
package broker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures the embedded broker.
type Config struct {
	// Addr is the TCP address to listen on (default "127.0.0.1:9092";
	// "127.0.0.1:0" picks a free port, see Broker.Addrs).
	Addr string
	// DataDir, when set, persists the log, groups and transactions there
	// and reloads them on the next Start with the same directory. Empty:
	// in memory only.
	DataDir string
	// Partitions is the partition count of topics created without one
	// (CreateTopics with -1); topics created with an explicit count keep
	// it. Default 1.
	Partitions int32
	// SyncWrites fsyncs every produced batch (slower, survives power loss).
	SyncWrites bool
	// MinSessionTimeout is the shortest consumer-group session timeout
	// accepted (default 250ms; Kafka's default is 6s).
	MinSessionTimeout time.Duration
	// Logger receives kfake's warnings and errors (default slog.Default()).
	Logger *slog.Logger
	// Users, when set, make the broker require SASL/SCRAM-SHA-512 and
	// enforce ACLs, as the production cluster does (infra/kafka): at least
	// one Super user for minecart's services, and partners with only
	// their ACLs (services/settlement.PartnerACLs). They and their ACLs
	// are set anew at every Start, even on a DataDir used before.
	Users []User
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9092"
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	c.setDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("broker addr %q: %w", c.Addr, err)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("broker partitions %d: must be >= 1", c.Partitions)
	}
	if c.MinSessionTimeout < 0 {
		return errors.New("broker min session timeout: negative")
	}
	hasSuper := false
	for _, u := range c.Users {
		if u.Name == "" || u.Password == "" {
			return errors.New("broker user: name and password required")
		}
		if _, err := aclCreations(u); err != nil {
			return fmt.Errorf("broker user %s: %w", u.Name, err)
		}
		hasSuper = hasSuper || u.Super
	}
	if len(c.Users) > 0 && !hasSuper {
		return errors.New("broker users: at least one Super user required (minecart's services; it creates the other users' ACLs)")
	}
	return nil
}

// aclTimeout bounds the creation of the users' ACLs in Start.
const aclTimeout = 30 * time.Second

// Broker is a running embedded broker.
type Broker struct {
	c       *kfake.Cluster
	log     *logAdapter
	dataDir string // made private again after Close (modes.go)
}

// Start starts the broker on cfg.Addr. Close stops it.
//
// With Users, the users and ACLs are those of cfg at every start, also on
// a DataDir used before: Start removes kfake's persisted users and ACLs
// (securityFiles) before starting it, gives the users as its seed
// credentials, then creates the ACLs of the users that are not Super
// through the admin API as the first Super user. Users and ACLs changed
// through the admin API while the broker runs last until the next Start.
func Start(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	la := &logAdapter{l: cfg.Logger}
	addr := cfg.Addr
	var g *gate
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			g = newGate(ln)
			return g, nil
		}),
		kfake.ClusterID("minecart"),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.GroupMinSessionTimeout(cfg.MinSessionTimeout),
		kfake.WithLogger(la),
		kfake.BrokerConfigs(map[string]string{
			// Kafka's defaults, stated so they are visible here.
			"transaction.max.timeout.ms": "900000",
			"message.max.bytes":          "1048588",
		}),
	}
	opts = append(opts, userOpts(cfg.Users)...)
	var open []OpenTxn
	if cfg.DataDir != "" {
		if err := prepareDataDir(cfg.DataDir); err != nil { // modes.go
			return nil, err
		}
		// Before kfake loads the directory: the files are at rest.
		healed, err := healIndexes(cfg.DataDir) // index.go
		for _, p := range healed {
			cfg.Logger.Warn("broker: rebuilt a segment index a crash left out of step with its batches (kfake would misread which batches are transactional)",
				"partition", p)
		}
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		scan, err := scanLog(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		// A commit that a crash cut short is completed on disk, before
		// kfake loads it (commitmarker.go); the rest is aborted below.
		var commit []OpenTxn
		commit, open = commitDecided(scan)
		committed, err := commitOnDisk(cfg.DataDir, commit)
		for _, o := range committed {
			cfg.Logger.Warn("broker: committed a transaction whose commit a crash cut short (COMMIT marker on another partition)",
				"topic", o.Topic, "partition", o.Partition, "producer_id", o.ProducerID, "epoch", o.Epoch,
				"first_offset", o.FirstOffset, "last_offset", o.LastOffset)
		}
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		for id := range scan.reused {
			if len(scan.committed[id]) > 0 && slices.ContainsFunc(open, func(o OpenTxn) bool { return o.ProducerID == id.pid && o.Epoch == id.epoch }) {
				cfg.Logger.Warn("broker: a dangling transaction's producer epoch, committed on another partition, names more than one transaction there: aborted, not committed",
					"producer_id", id.pid, "epoch", id.epoch)
			}
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
		if len(cfg.Users) > 0 {
			for _, f := range securityFiles {
				if err := os.Remove(filepath.Join(cfg.DataDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("broker users: %w", err)
				}
			}
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake on %s: %w", addr, err)
	}
	b := &Broker{c: c, log: la, dataDir: cfg.DataDir}
	if g == nil {
		c.Close()
		return nil, errors.New("start kfake: no listener")
	}
	if err := b.repair(g, cfg, open); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	g.open()
	if len(cfg.Users) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), aclTimeout)
		err := createACLs(ctx, b.Addrs(), cfg.Users)
		if err == nil {
			err = saslCompat(ctx, c, b.Addrs(), firstSuper(cfg.Users)) // librdkafka.go
		}
		cancel()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("broker users: %w", err), b.Close())
		}
	}
	cfg.Logger.Info("broker started", "addrs", b.Addrs(), "data_dir", cfg.DataDir)
	return b, nil
}

// repairTimeout bounds the repair of dangling transactions in Start.
const repairTimeout = 30 * time.Second

// repair aborts the dangling transactions among open (dangling.go; those
// to commit were committed on disk before kfake loaded) while
// g admits only the repair's own connections.
func (b *Broker) repair(g *gate, cfg Config, open []OpenTxn) error {
	if len(open) == 0 {
		return nil
	}
	cl, err := repairClient(g, cfg.Users)
	if err != nil {
		return fmt.Errorf("broker repair: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
	defer cancel()
	aborted, err := repairDangling(ctx, cl, open)
	for _, o := range aborted {
		cfg.Logger.Warn("broker: aborted a transaction left open by a crash (kfake wrote no abort marker on reload)",
			"topic", o.Topic, "partition", o.Partition, "producer_id", o.ProducerID, "epoch", o.Epoch,
			"first_offset", o.FirstOffset, "last_offset", o.LastOffset)
	}
	if err != nil {
		return fmt.Errorf("broker repair: %w", err)
	}
	return nil
}

// Addrs returns the host:port the broker listens on (the real port when
// Config.Addr asked for port 0).
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster returns the underlying kfake cluster (for tests that inject
// faults or trigger compaction).
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker, persisting its state when it has a DataDir
// (then made private again: modes.go). It returns the first persistence
// error kfake logged while shutting down (kfake's Close itself returns
// nothing).
func (b *Broker) Close() error {
	b.log.startCapture()
	b.c.Close()
	err := b.log.captured()
	if b.dataDir != "" {
		err = errors.Join(err, PrivateTree(b.dataDir))
	}
	return err
}

// logAdapter sends kfake's log to slog (warnings and errors only: kfake
// logs every request at info) and captures errors logged during Close.
type logAdapter struct {
	l *slog.Logger

	mu        sync.Mutex
	capturing bool
	first     error
}

func (a *logAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	if level != kfake.LogLevelError && level != kfake.LogLevelWarn {
		return
	}
	msg := fmt.Sprintf(format, args...)
	switch {
	case level == kfake.LogLevelError:
		a.l.Error("kfake: " + msg)
	case strings.HasPrefix(format, "txn: EndTxn slow"):
		// A timing note (> 5ms), frequent on a loaded machine.
		a.l.Debug("kfake: " + msg)
		return
	default:
		a.l.Warn("kfake: " + msg)
	}
	// kfake logs failed writes of its data directory at warn level.
	if level == kfake.LogLevelError || strings.HasPrefix(format, "persist") || strings.HasPrefix(format, "compact pids") || strings.HasPrefix(format, "compact groups") {
		a.mu.Lock()
		if a.capturing && a.first == nil {
			a.first = errors.New(strings.TrimSpace(msg))
		}
		a.mu.Unlock()
	}
}

func (a *logAdapter) startCapture() {
	a.mu.Lock()
	a.capturing = true
	a.mu.Unlock()
}

func (a *logAdapter) captured() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.first != nil {
		return fmt.Errorf("broker close: %w", a.first)
	}
	return nil
}
