package settlement

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
)

// This file is the library behind `minecart accounts ...` and
// `minecart catalog ...`: bindings and catalog items are records of
// compacted topics that the settlement stage reads in order.

// RangeReader lists a compacted topic's current records; a
// *kafka.Table implements it.
type RangeReader interface {
	Range(fn func(key string, value []byte) bool)
}

// ValidID reports whether s can be an owner, vehicle, partner or item id:
// 1 to 128 characters, no "/", no control characters or spaces.
func ValidID(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("id %q: want 1 to 128 characters", s)
	}
	if strings.ContainsAny(s, "/ \t\r\n") {
		return fmt.Errorf("id %q: no slash or white space allowed", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("id %q: control character", s)
		}
	}
	return nil
}

// BindVehicle binds vehicle to owner: its future credits go to owner's
// account, and credits held while it had no owner move there now.
func BindVehicle(ctx context.Context, p Producer, serde *schemas.Serde, vehicle, owner string, now time.Time) error {
	if err := ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := ValidID(owner); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	if strings.HasPrefix(owner, HoldPrefix) {
		return fmt.Errorf("owner %q: the prefix %q is reserved for holding accounts", owner, HoldPrefix)
	}
	v, err := NewCodec(serde).EncodeBinding(Binding{VehicleID: vehicle, Owner: owner, UpdatedAt: now.UTC().Truncate(time.Millisecond)})
	if err != nil {
		return err
	}
	if err := p.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), v); err != nil {
		return fmt.Errorf("bind %s: %w", vehicle, err)
	}
	return nil
}

// UnbindVehicle removes vehicle's binding: its later credits are held in
// the account vehicle:<id> until it is bound again.
func UnbindVehicle(ctx context.Context, p Producer, vehicle string) error {
	if err := ValidID(vehicle); err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	if err := p.ProduceSync(ctx, pipelines.TopicAccounts, []byte(vehicle), nil); err != nil {
		return fmt.Errorf("unbind %s: %w", vehicle, err)
	}
	return nil
}

// ListBindings returns the current bindings (of owner only, if not ""),
// sorted by vehicle id, from a table following pipelines.TopicAccounts.
func ListBindings(t RangeReader, serde *schemas.Serde, owner string) ([]Binding, error) {
	c := NewCodec(serde)
	var (
		out  []Binding
		errs []error
	)
	t.Range(func(key string, value []byte) bool {
		if value == nil {
			return true
		}
		x, err := c.DecodeBinding(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("binding %s: %w", key, err))
			return true
		}
		if owner == "" || x.Owner == owner {
			out = append(out, x)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].VehicleID < out[j].VehicleID })
	return out, errors.Join(errs...)
}

// PartnerTopics are the topics a partner needs: its redemptions topic
// (orders, kept forever like the status topic).
func PartnerTopics(partner string) []pipelines.TopicSpec {
	return []pipelines.TopicSpec{{
		Name: pipelines.PartnerRedemptionsTopic(partner), Partitions: 1,
		Doc: "settlement writes confirmed redemptions (orders) of partner " + partner + "; the partner reads",
	}}
}

// PutCatalogItem validates and publishes a catalog item. With brokers, it
// first creates the partner's redemptions topic if missing (the stage does
// too, before it takes the item in); nil brokers skip that. For brokers
// that need SASL or TLS use PutCatalogItemWith.
func PutCatalogItem(ctx context.Context, brokers []string, p Producer, serde *schemas.Serde, it CatalogItem) error {
	var ensure func(context.Context, string) error
	if len(brokers) > 0 {
		ensure = PartnerTopicsEnsurer(kafka.Config{Brokers: brokers})
	}
	return PutCatalogItemWith(ctx, p, serde, it, ensure)
}

// PutCatalogItemWith is PutCatalogItem with the topic creation given as
// ensure (PartnerTopicsEnsurer(cfg), or nil for none).
func PutCatalogItemWith(ctx context.Context, p Producer, serde *schemas.Serde, it CatalogItem, ensure func(ctx context.Context, partner string) error) error {
	if err := ValidID(it.Partner); err != nil {
		return fmt.Errorf("partner: %w", err)
	}
	if err := ValidID(it.ItemID); err != nil {
		return fmt.Errorf("item: %w", err)
	}
	if it.PricePoints <= 0 {
		return fmt.Errorf("item %s: price %d points, want > 0", it.Key(), it.PricePoints)
	}
	if it.Stock != nil && *it.Stock < 0 {
		return fmt.Errorf("item %s: stock %d, want >= 0", it.Key(), *it.Stock)
	}
	if it.UpdatedAt.IsZero() {
		it.UpdatedAt = time.Now()
	}
	it.UpdatedAt = it.UpdatedAt.UTC().Truncate(time.Millisecond)
	if ensure != nil {
		if err := ensure(ctx, it.Partner); err != nil {
			return fmt.Errorf("partner %s topics: %w", it.Partner, err)
		}
	}
	v, err := NewCodec(serde).EncodeItem(it)
	if err != nil {
		return err
	}
	if err := p.ProduceSync(ctx, pipelines.TopicCatalog, []byte(it.Key()), v); err != nil {
		return fmt.Errorf("catalog %s: %w", it.Key(), err)
	}
	return nil
}

// RemoveCatalogItem withdraws an item (a tombstone).
func RemoveCatalogItem(ctx context.Context, p Producer, partner, item string) error {
	if err := p.ProduceSync(ctx, pipelines.TopicCatalog, []byte(ItemKey(partner, item)), nil); err != nil {
		return fmt.Errorf("catalog %s: %w", ItemKey(partner, item), err)
	}
	return nil
}

// ListCatalog returns the catalog (of partner only, if not ""), sorted by
// key, from a table following pipelines.TopicCatalog.
func ListCatalog(t RangeReader, serde *schemas.Serde, partner string) ([]CatalogItem, error) {
	c := NewCodec(serde)
	var (
		out  []CatalogItem
		errs []error
	)
	t.Range(func(key string, value []byte) bool {
		if value == nil {
			return true
		}
		it, err := c.DecodeItem(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("catalog %s: %w", key, err))
			return true
		}
		if partner == "" || it.Partner == partner {
			out = append(out, it)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, errors.Join(errs...)
}
