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
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
)

// `minecart catalog ...`: a partner's items are records of the compacted
// catalog topic that the settlement stage reads in order.

func catalogCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka
	cmd := adminCommand("catalog", "manage a partner's catalog", &kf)
	var partner, item, title string
	var price, stock int64
	partnerFlag := func(fs *flag.FlagSet) { fs.StringVar(&partner, "partner", "", "partner id") }
	itemFlags := func(fs *flag.FlagSet) {
		partnerFlag(fs)
		fs.StringVar(&item, "item", "", "item id")
	}
	sub(cmd, &kf, "add", "add or update an item (creates the partner's topics)", func(fs *flag.FlagSet) {
		itemFlags(fs)
		fs.StringVar(&title, "title", "", "item title")
		fs.Int64Var(&price, "price", 0, "price in points")
		fs.Int64Var(&stock, "stock", -1, "units available from now on; -1 unlimited")
	}, func(ctx context.Context, a *admin) error {
		it := &avro.CatalogItem{Partner: partner, ItemID: item, Title: title, PricePoints: price, Active: true, UpdatedMs: time.Now().UTC()}
		if stock >= 0 {
			it.Stock = &stock
		}
		if err := settleapi.PutItem(ctx, a.producer, a.serde, it, a.ensurePartner); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "item %s/%s at %d points\n", partner, item, price)
		return nil
	})
	sub(cmd, &kf, "remove", "remove an item from the catalog", itemFlags, func(ctx context.Context, a *admin) error {
		if err := settleapi.RemoveItem(ctx, a.producer, partner, item); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "item %s/%s removed\n", partner, item)
		return nil
	})
	sub(cmd, &kf, "list", "list the catalog", partnerFlag, func(ctx context.Context, a *admin) error {
		list, err := a.listCatalog(ctx, partner)
		rows := make([][]any, len(list))
		for i, it := range list {
			st := "unlimited"
			if it.Stock != nil {
				st = fmt.Sprint(*it.Stock)
			}
			rows[i] = []any{it.Partner, it.ItemID, it.Title, it.PricePoints, st, it.Active}
		}
		return errors.Join(printTable(stdout, "PARTNER ITEM TITLE PRICE STOCK ACTIVE", rows), err)
	})
	return cmd
}

// ensurePartner creates a partner's topics if missing.
func (a *admin) ensurePartner(ctx context.Context, partner string) error {
	return kafka.EnsureTopicsWith(ctx, a.cfg, settlement.PartnerTopics(partner))
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
