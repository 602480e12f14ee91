package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// TestCatalogCommands: `catalog add` writes the item's record under its
// key and creates the partner's topic, refuses ids, prices and stock the
// stage would refuse, and `catalog list` shows the items.
func TestCatalogCommands(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	catalog := func(args ...string) error {
		out.Reset()
		return run(ctx, append([]string{"catalog", "--brokers", strings.Join(brokers, ",")}, args...), &out, io.Discard)
	}
	before := time.Now()
	if err := catalog("add", "--partner", "acme", "--item", "mug", "--title", "Mug", "--price", "30", "--stock", "5"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "item acme/mug at 30 points\n" {
		t.Errorf("add output %q", got)
	}
	if err := catalog("add", "--partner", "acme", "--item", "pen", "--title", "Pen", "--price", "3"); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"--partner a_b --item x/y --price 3": `item: id "x/y": byte 1 ('/') not in [A-Za-z0-9._-]`,
		"--partner a/b --item x --price 3":   `partner: id "a/b": byte 1 ('/') not in [A-Za-z0-9._-]`,
		"--partner acme --item x --price 0":  "item acme/x: price 0 points, want > 0",
	} {
		if err := catalog(append([]string{"add"}, strings.Fields(args)...)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("add %s: %v, want %q", args, err, want)
		}
	}

	recs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicCatalog)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d catalog records, want 2", len(recs))
	}
	i := slices.IndexFunc(recs, func(r pipelines.Record) bool { return string(r.Key) == "acme/mug" })
	if i < 0 {
		t.Fatal("no catalog record acme/mug")
	}
	var mug avro.CatalogItem
	if err := schemas.SingleObject().Unmarshal(recs[i].Value, &mug); err != nil {
		t.Fatal(err)
	}
	if mug.Partner != "acme" || mug.ItemID != "mug" || mug.Title != "Mug" || mug.PricePoints != 30 ||
		mug.Stock == nil || *mug.Stock != 5 || !mug.Active || mug.UpdatedMs.Before(before.Truncate(time.Millisecond)) || mug.UpdatedMs.After(time.Now()) {
		t.Errorf("catalog record acme/mug = %+v", mug)
	}
	if _, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.PartnerRedemptionsTopic("acme")); err != nil {
		t.Errorf("partner topic: %v", err)
	}

	if err := catalog("list", "--partner", "acme"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[1]), " ") != "acme mug Mug 30 5 true" ||
		strings.Join(strings.Fields(lines[2]), " ") != "acme pen Pen 3 unlimited true" {
		t.Errorf("list output\n%s", out.String())
	}
}
