package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
)

// The operators' writes of settlement's inputs (`minecart accounts` and
// `minecart catalog`, and the simulated fleet of `minecart run`): each
// validates its input, then writes one record of a compacted topic that
// the settlement stage reads in order.

// BindVehicle binds vehicle to owner: its future credits go to owner's
// account, and credits held while it had no owner move there now.
func BindVehicle(ctx context.Context, p Producer, serde *schemas.Serde, vehicle, owner string, at time.Time) error {
	if err := settlement.ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := settlement.ValidID(owner); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	if strings.HasPrefix(owner, settlement.HoldPrefix) {
		return fmt.Errorf("owner %q: the prefix %q is reserved for holding accounts", owner, settlement.HoldPrefix)
	}
	v, err := serde.Marshal(&avro.AccountBinding{VehicleID: vehicle, Owner: owner, UpdatedMs: at})
	if err == nil {
		err = p.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), v)
	}
	if err != nil {
		return fmt.Errorf("bind %s: %w", vehicle, err)
	}
	return nil
}

// UnbindVehicle removes vehicle's binding: its later credits are held in
// the account vehicle:<id> until it is bound again.
func UnbindVehicle(ctx context.Context, p Producer, vehicle string) error {
	if err := settlement.ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := p.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), nil); err != nil {
		return fmt.Errorf("unbind %s: %w", vehicle, err)
	}
	return nil
}

// PutItem validates and publishes a catalog item, after ensure created the
// partner's topics if missing (the stage does too, before it takes the
// item in).
func PutItem(ctx context.Context, p Producer, serde *schemas.Serde, it *avro.CatalogItem, ensure func(ctx context.Context, partner string) error) error {
	if err := settlement.ValidID(it.Partner); err != nil {
		return fmt.Errorf("partner: %w", err)
	}
	if err := settlement.ValidID(it.ItemID); err != nil {
		return fmt.Errorf("item: %w", err)
	}
	key := settlement.ItemKey(it.Partner, it.ItemID)
	if it.PricePoints <= 0 {
		return fmt.Errorf("item %s: price %d points, want > 0", key, it.PricePoints)
	}
	if it.Stock != nil && *it.Stock < 0 {
		return fmt.Errorf("item %s: stock %d, want >= 0", key, *it.Stock)
	}
	if err := ensure(ctx, it.Partner); err != nil {
		return fmt.Errorf("partner %s topics: %w", it.Partner, err)
	}
	v, err := serde.Marshal(it)
	if err == nil {
		err = p.ProduceSync(ctx, pipelines.TopicCatalog, []byte(key), v)
	}
	if err != nil {
		return fmt.Errorf("catalog %s: %w", key, err)
	}
	return nil
}

// RemoveItem withdraws an item (a tombstone).
func RemoveItem(ctx context.Context, p Producer, partner, item string) error {
	key := settlement.ItemKey(partner, item)
	if err := p.ProduceSync(ctx, pipelines.TopicCatalog, []byte(key), nil); err != nil {
		return fmt.Errorf("catalog %s: %w", key, err)
	}
	return nil
}
