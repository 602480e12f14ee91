package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
)

// adminCommand declares a command whose subcommands reach Kafka: it holds
// the connection flags (daemon.Kafka: brokers, registry, SASL, TLS, as the
// services take them), valid before or after the subcommand.
func adminCommand(name, short string, kf *daemon.Kafka) *ff.Command {
	return newCommand(nil, name, "SUBCOMMAND", short, kf.Register, nil)
}

// sub declares a subcommand of parent that takes no arguments and runs
// exec connected with the connection flags kf of parent.
func sub(parent *ff.Command, kf *daemon.Kafka, name, short string, flags func(fs *flag.FlagSet), exec func(ctx context.Context, a *admin) error) {
	parent.Subcommands = append(parent.Subcommands, newCommand(parent, name, "", short, flags, func(ctx context.Context, _ []string) error {
		a, err := connect(ctx, kf)
		if err != nil {
			return err
		}
		defer a.Close()
		return exec(ctx, a)
	}))
}

// admin is what an administrative command needs: a producer, the serde and
// the pipelines config to open tables with.
type admin struct {
	cfg      kafka.Config
	serde    *schemas.Serde
	producer *kafka.Producer
}

// connect connects with the connection flags of kf.
func connect(ctx context.Context, kf *daemon.Kafka) (*admin, error) {
	cfg, err := kf.Config(ctx, slog.Default(), nil)
	if err != nil {
		return nil, err
	}
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		return nil, err
	}
	return &admin{cfg: cfg, serde: cfg.Serde, producer: p}, nil
}

func (a *admin) Close() error { return a.producer.Close() }

func (a *admin) table(ctx context.Context, topic string) (*kafka.Table, error) {
	t, err := kafka.NewTable(ctx, a.cfg, topic)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.WaitCaught(wctx); err != nil {
		t.Close()
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	return t, nil
}

func devicesCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka
	cmd := adminCommand("devices", "provision telemetry boxes", &kf)
	var id, vehicle, tz, auth, key, keyFile string
	idFlag := func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "device id") }
	keyFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&keyFile, "device-key", ".minecart/devices.key", "the gateway's device-registry key file (0600) that HMAC secrets are sealed under (minecart run: <data-dir>/devices.key)")
	}
	// withDevices runs fn over the device registry; sealing loads the
	// registry key of --device-key.
	withDevices := func(sealing bool, fn func(ctx context.Context, ds *gateway.Devices) error) func(context.Context, *admin) error {
		return func(ctx context.Context, a *admin) error {
			var rk *gateway.RegistryKey
			if sealing && (authKind(auth) == gateway.AuthHMAC || auth == "") {
				var err error
				if rk, err = gateway.LoadRegistryKey(keyFile); err != nil {
					return fmt.Errorf("--device-key: %w", err)
				}
			}
			t, err := a.table(ctx, pipelines.TopicDevices)
			if err != nil {
				return err
			}
			defer t.Close()
			return fn(ctx, gateway.NewDevices(a.producer, t, rk, a.serde, nil))
		}
	}
	sub(cmd, &kf, "add", "register a device for a vehicle (an HMAC secret is generated unless --key)", func(fs *flag.FlagSet) {
		idFlag(fs)
		fs.StringVar(&vehicle, "vehicle", "", "the vehicle the device may write events for")
		fs.StringVar(&tz, "tz", "Asia/Shanghai", "the vehicle's IANA time zone")
		fs.StringVar(&auth, "auth", "hmac", "hmac (HMAC-SHA256 secret) or ed25519 (public key)")
		fs.StringVar(&key, "key", "", "hex HMAC secret (empty: generated) or hex Ed25519 public key")
		keyFlag(fs)
	}, withDevices(true, func(ctx context.Context, ds *gateway.Devices) error {
		var k []byte
		if key != "" {
			var err error
			if k, err = hex.DecodeString(key); err != nil {
				return fmt.Errorf("--key: %w", err)
			}
		}
		d, err := ds.Add(ctx, gateway.NewDevice{ID: id, VehicleID: vehicle, VehicleTZ: tz, Auth: authKind(auth), Key: k})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s added for vehicle %s (%s)\n", d.ID, d.VehicleID, d.Auth)
		if d.Auth == gateway.AuthHMAC && key == "" {
			fmt.Fprintf(stdout, "secret %s   (shown once: provision it into the box)\n", hex.EncodeToString(d.Key))
		}
		return nil
	}))
	sub(cmd, &kf, "list", "list the registered devices", nil, withDevices(false, func(ctx context.Context, ds *gateway.Devices) error {
		list, err := ds.List(ctx)
		rows := make([][]any, len(list))
		for i, d := range list {
			rows[i] = []any{d.ID, d.VehicleID, d.VehicleTZ, d.Auth, d.Status, d.Updated.Format(time.RFC3339)}
		}
		return errors.Join(printTable(stdout, "DEVICE VEHICLE TZ AUTH STATUS UPDATED", rows), err)
	}))
	sub(cmd, &kf, "revoke", "revoke a device: its uploads are refused from now on", idFlag, withDevices(false, func(ctx context.Context, ds *gateway.Devices) error {
		d, err := ds.Revoke(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s revoked\n", d.ID)
		return nil
	}))
	sub(cmd, &kf, "seal", "seal the plaintext HMAC secrets of devices provisioned before sealing (the gateway refuses them until then)", keyFlag, withDevices(true, func(ctx context.Context, ds *gateway.Devices) error {
		res, err := ds.Seal(ctx)
		for _, id := range res.Sealed {
			fmt.Fprintf(stdout, "device %s: secret sealed (it was readable on the devices topic: rotate it)\n", id)
		}
		fmt.Fprintf(stdout, "%d sealed now, %d already sealed\n", len(res.Sealed), len(res.Already))
		return err
	}))
	return cmd
}

// authKind maps the CLI's short names to the registry's auth kinds; other
// values pass through, and the registry refuses what it does not know.
func authKind(s string) gateway.AuthKind {
	switch strings.ToLower(s) {
	case "hmac", "hmac_sha256", "hmac-sha256":
		return gateway.AuthHMAC
	case "ed25519":
		return gateway.AuthEd25519
	}
	return gateway.AuthKind(s)
}

// printTable writes rows under the space-separated header as aligned columns.
func printTable(stdout io.Writer, header string, rows [][]any) error {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.ReplaceAll(header, " ", "\t"))
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				fmt.Fprint(w, "\t")
			}
			fmt.Fprint(w, v)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
