package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
)

// `minecart catalog ...`: a partner's items are records of the compacted
// catalog topic that the settlement stage reads in order.

// putCatalogItem validates and publishes a catalog item, after creating
// the partner's redemptions topic if missing (the stage does too, before
// it takes the item in).
func (a *admin) putCatalogItem(ctx context.Context, it settlement.CatalogItem) error {
	if err := settlement.ValidID(it.Partner); err != nil {
		return fmt.Errorf("partner: %w", err)
	}
	if err := settlement.ValidID(it.ItemID); err != nil {
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
	if err := kafka.EnsureTopicsWith(ctx, a.cfg, settlement.PartnerTopics(it.Partner)); err != nil {
		return fmt.Errorf("partner %s topics: %w", it.Partner, err)
	}
	v, err := a.serde.Marshal(&avro.CatalogItem{Partner: it.Partner, ItemID: it.ItemID, Title: it.Title,
		PricePoints: it.PricePoints, Stock: it.Stock, Active: it.Active, UpdatedMs: it.UpdatedAt})
	if err != nil {
		return err
	}
	if err := a.producer.ProduceSync(ctx, pipelines.TopicCatalog, []byte(it.Key()), v); err != nil {
		return fmt.Errorf("catalog %s: %w", it.Key(), err)
	}
	return nil
}

// removeCatalogItem withdraws an item (a tombstone).
func (a *admin) removeCatalogItem(ctx context.Context, partner, item string) error {
	if err := a.producer.ProduceSync(ctx, pipelines.TopicCatalog, []byte(settlement.ItemKey(partner, item)), nil); err != nil {
		return fmt.Errorf("catalog %s: %w", settlement.ItemKey(partner, item), err)
	}
	return nil
}

// listCatalog returns the catalog (of partner only, if not ""), sorted by
// key.
func (a *admin) listCatalog(ctx context.Context, partner string) ([]settlement.CatalogItem, error) {
	recs, err := readTable[avro.CatalogItem](ctx, a, pipelines.TopicCatalog, "catalog")
	var out []settlement.CatalogItem
	for i := range recs {
		if partner == "" || recs[i].Partner == partner {
			out = append(out, settlement.ItemFrom(&recs[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, err
}
