package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/peterbourgon/ff/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/infra/chserver"
	chmigrate "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/stack"
)

func brokerCommand(stdout io.Writer) *ff.Command {
	var cfg broker.Config
	return newCommand(nil, "broker", "", "run the embedded Kafka broker alone", func(fs *flag.FlagSet) {
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:9092", "Kafka listen address")
		fs.StringVar(&cfg.DataDir, "data-dir", ".minecart/kafka", "directory the broker persists its log, groups and transactions in")
		fs.BoolVar(&cfg.SyncWrites, "sync-writes", false, "fsync every produced batch")
		fs.Func("user", "NAME:PASSWORD of a SCRAM-SHA-512 superuser (minecart's services); without any --user, the credentials of <data-dir>/credentials.json (generated on first start: superuser minecart, analyst, partner-acme). SASL and ACLs are always enforced", func(v string) error {
			return addUser(&cfg, v, func(name string) (broker.User, error) { return broker.User{Name: name, Super: true}, nil })
		})
		fs.Func("partner-login", "ID:PASSWORD of a partner: SCRAM-SHA-512 user partner-ID allowed exactly the partner ACLs of infra/kafka/init-acls.sh (repeatable)", func(v string) error {
			return addUser(&cfg, v, func(id string) (broker.User, error) {
				if err := settlement.ValidID(id); err != nil {
					return broker.User{}, fmt.Errorf("partner: %w", err)
				}
				return broker.User{Name: settlement.PartnerUser(id), ACLs: settlement.PartnerACLs(id)}, nil
			})
		})
	}, func(ctx context.Context, _ []string) error { return brokerRun(ctx, cfg, stdout) })
}

// addUser adds the user of a NAME:PASSWORD flag value.
func addUser(cfg *broker.Config, v string, user func(name string) (broker.User, error)) error {
	name, pass, ok := strings.Cut(v, ":")
	if !ok || name == "" || pass == "" {
		return errors.New("want NAME:PASSWORD")
	}
	u, err := user(name)
	if err != nil {
		return err
	}
	u.Password = pass
	cfg.Users = append(cfg.Users, u)
	return nil
}

func brokerRun(ctx context.Context, cfg broker.Config, stdout io.Writer) error {
	cfg.Logger = slog.Default()
	var generated *broker.Credentials
	if len(cfg.Users) == 0 {
		// SCRAM by default: the generated credentials of the data directory.
		if cfg.DataDir == "" {
			return errors.New("--data-dir is required without --user: the generated credentials live there")
		}
		creds, err := broker.LoadOrCreateCredentials(filepath.Join(cfg.DataDir, broker.CredentialsFile), stack.DefaultCredentials())
		if err != nil {
			return err
		}
		if cfg.Users, err = stack.BrokerUsers(creds); err != nil {
			return err
		}
		generated = &creds
	}
	kcfg := kafka.Config{}
	for _, u := range cfg.Users {
		if u.Super && kcfg.ClientOptions == nil {
			mech, err := daemon.ParseSASL("scram-sha-512:" + u.Name + ":" + u.Password)
			if err != nil {
				return err
			}
			kcfg.ClientOptions = []kgo.Opt{kgo.SASL(mech)}
		}
	}
	b, err := broker.Start(cfg)
	if err != nil {
		return err
	}
	kcfg.Brokers = b.Addrs()
	if err := kafka.EnsureTopicsWith(ctx, kcfg, pipelines.Topology); err != nil {
		return errors.Join(fmt.Errorf("create topology: %w", err), b.Close())
	}
	slog.Info("embedded Kafka broker ready", "addrs", b.Addrs(), "data_dir", cfg.DataDir, "users", len(cfg.Users))
	fmt.Fprintf(stdout, "kafka listening %v (SASL/SCRAM-SHA-512 required)\n", b.Addrs())
	if generated != nil {
		printKafkaLogins(stdout, b.Addrs()[0], *generated, filepath.Join(cfg.DataDir, broker.CredentialsFile), "<ledger.key.pub>")
	}
	<-ctx.Done()
	return b.Close()
}

func clickhouseCommand() *ff.Command {
	// `minecart run` reads the line of OnListen to learn the address.
	cfg := chserver.Config{OnListen: func(a net.Addr) { fmt.Fprintf(os.Stdout, "listening %s\n", a) }}
	var usersFile string
	var users []chserver.User
	return newCommand(nil, "clickhouse", "", "run the embedded ClickHouse server alone (chDB over ClickHouse's HTTP interface, with users: docs/analytics.md)", func(fs *flag.FlagSet) {
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8123", "HTTP listen address (ClickHouse's HTTP interface)")
		fs.StringVar(&cfg.DataDir, "data-dir", ".minecart/clickhouse", "directory of the databases")
		fs.StringVar(&usersFile, "users-file", "", "JSON users file (default DATA-DIR/users.json); created with users analyst, reader (readonly) and writer when it is missing and no --user is given")
		fs.Func("user", "NAME:PASSWORD:ROLE of a user, role readonly, writer or admin (repeatable; added to the users file's)", func(v string) error {
			u, err := chserver.ParseUser(v)
			users = append(users, u)
			return err
		})
		fs.IntVar(&cfg.Limits.MaxExecutionTime, "readonly-max-execution-time", 60, "seconds a readonly user's query may run at most")
		fs.Int64Var(&cfg.Limits.MaxResultRows, "readonly-max-result-rows", 10_000_000, "rows a readonly user's result may hold at most")
		fs.Int64Var(&cfg.Limits.MaxMemoryUsage, "readonly-max-memory-usage", 2<<30, "bytes of memory a readonly user's query may use at most")
	}, func(ctx context.Context, _ []string) error {
		cfg.Logger = slog.Default()
		if usersFile == "" {
			usersFile = filepath.Join(cfg.DataDir, "users.json")
		}
		all, created, err := chserver.UsersFromFlags(users, usersFile)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(os.Stderr, "clickhouse: created users analyst, reader and writer in %s (mode 0600)\n", usersFile)
		}
		cfg.Users = all
		return chserver.Serve(ctx, cfg)
	})
}

func migrateCommand(stdout io.Writer) *ff.Command {
	var dsn string
	return newCommand(nil, "migrate", "", "apply the ClickHouse migrations (infra/clickhouse)", func(fs *flag.FlagSet) {
		fs.StringVar(&dsn, "clickhouse", sink.DefaultDSN, "ClickHouse DSN with a writer's credentials: http://writer:PASSWORD@host:8123/db (embedded: see DATA-DIR/clickhouse/users.json) or clickhouse://user:pass@host:9000/db (prefer MINECART_CLICKHOUSE)")
	}, func(ctx context.Context, _ []string) error { return migrate(ctx, dsn, stdout) })
}

func migrate(ctx context.Context, dsn string, stdout io.Writer) error {
	conn, err := sink.Open(dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := chmigrate.Migrate(ctx, conn); err != nil {
		return err
	}
	applied, err := chmigrate.Applied(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ClickHouse schema up to date: %d migrations applied\n", len(applied))
	return nil
}
