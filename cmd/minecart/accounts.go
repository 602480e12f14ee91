package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
)

// `minecart accounts ...`: bindings of vehicles to owner accounts are
// records of the compacted accounts topic that the settlement stage reads
// in order.

func accountsCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka
	cmd := adminCommand("accounts", "bind vehicles to owner accounts", &kf)
	var vehicle, owner string
	vehicleFlag := func(fs *flag.FlagSet) { fs.StringVar(&vehicle, "vehicle", "", "vehicle id") }
	sub(cmd, &kf, "bind", "credit a vehicle's points to an owner account from now on", func(fs *flag.FlagSet) {
		vehicleFlag(fs)
		fs.StringVar(&owner, "owner", "", "owner account")
	}, func(ctx context.Context, a *admin) error {
		if err := a.bindVehicle(ctx, vehicle, owner, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vehicle %s bound to owner %s\n", vehicle, owner)
		return nil
	})
	sub(cmd, &kf, "unbind", "remove a vehicle's binding: its credits are held until it is bound again", vehicleFlag, func(ctx context.Context, a *admin) error {
		if err := a.unbindVehicle(ctx, vehicle); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vehicle %s unbound\n", vehicle)
		return nil
	})
	sub(cmd, &kf, "list", "list the bindings", func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "only the bindings of this owner account")
	}, func(ctx context.Context, a *admin) error {
		list, err := a.listBindings(ctx, owner)
		rows := make([][]any, len(list))
		for i, b := range list {
			rows[i] = []any{b.VehicleID, b.Owner, b.UpdatedAt.Format(time.RFC3339)}
		}
		return errors.Join(printTable(stdout, "VEHICLE OWNER UPDATED", rows), err)
	})
	return cmd
}

// bindVehicle binds vehicle to owner: its future credits go to owner's
// account, and credits held while it had no owner move there now.
func (a *admin) bindVehicle(ctx context.Context, vehicle, owner string, now time.Time) error {
	if err := settlement.ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := settlement.ValidID(owner); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	if strings.HasPrefix(owner, settlement.HoldPrefix) {
		return fmt.Errorf("owner %q: the prefix %q is reserved for holding accounts", owner, settlement.HoldPrefix)
	}
	v, err := a.serde.Marshal(&avro.AccountBinding{VehicleID: vehicle, Owner: owner, UpdatedMs: now})
	if err != nil {
		return err
	}
	if err := a.producer.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), v); err != nil {
		return fmt.Errorf("bind %s: %w", vehicle, err)
	}
	return nil
}

// unbindVehicle removes vehicle's binding: its later credits are held in
// the account vehicle:<id> until it is bound again.
func (a *admin) unbindVehicle(ctx context.Context, vehicle string) error {
	if err := settlement.ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := a.producer.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), nil); err != nil {
		return fmt.Errorf("unbind %s: %w", vehicle, err)
	}
	return nil
}

// listBindings returns the current bindings (of owner only, if not ""),
// sorted by vehicle id.
func (a *admin) listBindings(ctx context.Context, owner string) ([]settlement.Binding, error) {
	recs, err := readTable[avro.AccountBinding](ctx, a, pipelines.TopicAccounts, "binding")
	var out []settlement.Binding
	for i := range recs {
		if owner == "" || recs[i].Owner == owner {
			out = append(out, settlement.BindingFrom(&recs[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VehicleID < out[j].VehicleID })
	return out, err
}

// readTable reads a compacted topic to its end and decodes its current
// records (what names them in errors); records that do not decode are
// skipped and reported.
func readTable[T any, R interface {
	*T
	schemas.Record
}](ctx context.Context, a *admin, topic, what string) ([]T, error) {
	t, err := a.table(ctx, topic)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	var (
		out  []T
		errs []error
	)
	t.Range(func(key string, value []byte) bool {
		if value == nil {
			return true
		}
		var v T
		if err := a.serde.Unmarshal(value, R(&v)); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", what, key, err))
			return true
		}
		out = append(out, v)
		return true
	})
	return out, errors.Join(errs...)
}
