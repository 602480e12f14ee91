package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
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
		if err := settleapi.BindVehicle(ctx, a.producer, a.serde, vehicle, owner, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vehicle %s bound to owner %s\n", vehicle, owner)
		return nil
	})
	sub(cmd, &kf, "unbind", "remove a vehicle's binding: its credits are held until it is bound again", vehicleFlag, func(ctx context.Context, a *admin) error {
		if err := settleapi.UnbindVehicle(ctx, a.producer, vehicle); err != nil {
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
