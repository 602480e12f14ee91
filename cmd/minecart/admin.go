package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// admin is what an administrative command needs: a producer, the serde and
// the pipelines config to open tables with.
type admin struct {
	cfg      kafka.Config
	serde    *schemas.Serde
	producer *kafka.Producer
}

// adminCommand is what every administrative command starts with: its
// subcommand, and a flag set holding the Kafka connection flags (brokers,
// registry, SASL, TLS: daemon.Kafka, as the services take them).
type adminCommand struct {
	sub   string
	args  []string
	fs    *flag.FlagSet
	kafka daemon.Kafka
}

// newAdminCommand splits "minecart NAME SUB args" and reports a missing SUB.
func newAdminCommand(name string, args []string, subs string) (*adminCommand, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return nil, fmt.Errorf("usage: minecart %s %s", name, subs)
	}
	c := &adminCommand{sub: args[0], args: args[1:], fs: newFlags(name + " " + args[0])}
	c.kafka.Register(c.fs)
	return c, nil
}

// open parses the command's flags (those added after newAdminCommand too)
// and connects.
func (c *adminCommand) open(ctx context.Context) (*admin, error) {
	if err := parseFlags(c.fs, c.args); err != nil {
		return nil, err
	}
	cfg, serde, err := c.kafka.Config(ctx, slog.Default(), nil)
	if err != nil {
		return nil, err
	}
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		return nil, err
	}
	return &admin{cfg: cfg, serde: serde, producer: p}, nil
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

func devicesCmd(ctx context.Context, args []string) error {
	c, err := newAdminCommand("devices", args, "add|list|revoke [flags]")
	if err != nil {
		return err
	}
	fs := c.fs
	id := fs.String("id", "", "device id")
	vehicle := fs.String("vehicle", "", "the vehicle the device may write events for (add)")
	tz := fs.String("tz", "Asia/Shanghai", "the vehicle's IANA time zone (add)")
	auth := fs.String("auth", "hmac", "hmac (HMAC-SHA256 secret) or ed25519 (public key) (add)")
	key := fs.String("key", "", "hex HMAC secret (empty: generated) or hex Ed25519 public key (add)")
	a, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := a.table(ctx, pipelines.TopicDevices)
	if err != nil {
		return err
	}
	defer t.Close()
	ds := gateway.NewDevices(a.producer, t, a.serde, nil)
	switch c.sub {
	case "add":
		var k []byte
		if *key != "" {
			if k, err = hex.DecodeString(*key); err != nil {
				return fmt.Errorf("--key: %w", err)
			}
		}
		d, err := ds.Add(ctx, gateway.NewDevice{ID: *id, VehicleID: *vehicle, VehicleTZ: *tz, Auth: authKind(*auth), Key: k})
		if err != nil {
			return err
		}
		fmt.Printf("device %s added for vehicle %s (%s)\n", d.ID, d.VehicleID, d.Auth)
		if d.Auth == gateway.AuthHMAC && *key == "" {
			fmt.Printf("secret %s   (shown once: provision it into the box)\n", hex.EncodeToString(d.Key))
		}
		return nil
	case "revoke":
		d, err := ds.Revoke(ctx, *id)
		if err != nil {
			return err
		}
		fmt.Printf("device %s revoked\n", d.ID)
		return nil
	case "list":
		list, err := ds.List(ctx)
		rows := make([][]any, len(list))
		for i, d := range list {
			rows[i] = []any{d.ID, d.VehicleID, d.VehicleTZ, d.Auth, d.Status, d.Updated.Format(time.RFC3339)}
		}
		return errors.Join(printTable("DEVICE VEHICLE TZ AUTH STATUS UPDATED", rows), err)
	}
	return fmt.Errorf("devices: unknown subcommand %q (add|list|revoke)", c.sub)
}

func accountsCmd(ctx context.Context, args []string) error {
	c, err := newAdminCommand("accounts", args, "bind|unbind|list [flags]")
	if err != nil {
		return err
	}
	fs := c.fs
	vehicle := fs.String("vehicle", "", "vehicle id (bind, unbind)")
	owner := fs.String("owner", "", "owner account (bind; list filters by it)")
	a, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	switch c.sub {
	case "bind":
		if err := a.bindVehicle(ctx, *vehicle, *owner, time.Now()); err != nil {
			return err
		}
		fmt.Printf("vehicle %s bound to owner %s\n", *vehicle, *owner)
		return nil
	case "unbind":
		if err := a.unbindVehicle(ctx, *vehicle); err != nil {
			return err
		}
		fmt.Printf("vehicle %s unbound\n", *vehicle)
		return nil
	case "list":
		list, err := a.listBindings(ctx, *owner)
		rows := make([][]any, len(list))
		for i, b := range list {
			rows[i] = []any{b.VehicleID, b.Owner, b.UpdatedAt.Format(time.RFC3339)}
		}
		return errors.Join(printTable("VEHICLE OWNER UPDATED", rows), err)
	}
	return fmt.Errorf("accounts: unknown subcommand %q (bind|unbind|list)", c.sub)
}

func catalogCmd(ctx context.Context, args []string) error {
	c, err := newAdminCommand("catalog", args, "add|remove|list [flags]")
	if err != nil {
		return err
	}
	fs := c.fs
	partner := fs.String("partner", "", "partner id")
	item := fs.String("item", "", "item id (add, remove)")
	title := fs.String("title", "", "item title (add)")
	price := fs.Int64("price", 0, "price in points (add)")
	stock := fs.Int64("stock", -1, "units available from now on; -1 unlimited (add)")
	a, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	switch c.sub {
	case "add":
		it := settlement.CatalogItem{Partner: *partner, ItemID: *item, Title: *title, PricePoints: *price, Active: true, UpdatedAt: time.Now().UTC()}
		if *stock >= 0 {
			it.Stock = stock
		}
		if err := a.putCatalogItem(ctx, it); err != nil {
			return err
		}
		fmt.Printf("item %s/%s at %d points\n", *partner, *item, *price)
		return nil
	case "remove":
		if err := a.removeCatalogItem(ctx, *partner, *item); err != nil {
			return err
		}
		fmt.Printf("item %s/%s removed\n", *partner, *item)
		return nil
	case "list":
		list, err := a.listCatalog(ctx, *partner)
		rows := make([][]any, len(list))
		for i, it := range list {
			st := "unlimited"
			if it.Stock != nil {
				st = fmt.Sprint(*it.Stock)
			}
			rows[i] = []any{it.Partner, it.ItemID, it.Title, it.PricePoints, st, it.Active}
		}
		return errors.Join(printTable("PARTNER ITEM TITLE PRICE STOCK ACTIVE", rows), err)
	}
	return fmt.Errorf("catalog: unknown subcommand %q (add|remove|list)", c.sub)
}

func ledgerCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage:\n" + ledger.Commands)
	}
	return ledger.Command(ctx, args, os.Stdout)
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
func printTable(header string, rows [][]any) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
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
