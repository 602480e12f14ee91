package owner_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
)

// dirKeys is a followed pseudonyms topic already read to its end.
type dirKeys struct{ d *pseudonym.Directory }

func (k dirKeys) Directory() *pseudonym.Directory { return k.d }
func (dirKeys) CatchUp(context.Context) error     { return nil }
func (dirKeys) Sync(context.Context) error        { return nil }

// TestFeedSealedScores: the view takes a sealed score (docs/privacy.md)
// as the score inside; once the vehicle's key is destroyed, a sealed score
// is skipped and counted as shredded, not as bad.
func TestFeedSealedScores(t *testing.T) {
	serde := schemas.SingleObject()
	keys := dirKeys{pseudonym.NewDirectory()}
	v := view.New(view.Config{})
	reg := prometheus.NewRegistry()
	clock := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f, err := owner.NewFeed(owner.FeedConfig{View: v, Serde: serde, Registerer: reg, Now: func() time.Time { return clock }, Pseudonyms: keys})
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(vin string, day time.Time) (pipelines.Record, pseudonym.Opening) {
		key := pseudonym.Derived("s").NewKey(pseudonym.Vehicle, vin)
		o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, pseudonym.Vehicle, vin), Kind: pseudonym.Vehicle, ID: vin, Key: key}
		keys.d.Put(o)
		inner, err := serde.Marshal(viewScore(vin, day, 3))
		if err != nil {
			t.Fatal(err)
		}
		s, err := shred.Seal(o, pipelines.TopicScores, inner)
		if err != nil {
			t.Fatal(err)
		}
		b, err := serde.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(o.Pseudonym), Value: b}, o
	}
	day := clock.Truncate(24*time.Hour).AddDate(0, 0, -1)
	a, _ := sealed("sealed-a", day)
	b, ob := sealed("sealed-b", day)
	keys.d.Delete(ob.Pseudonym) // b is erased
	b.Offset = 1
	for _, r := range []pipelines.Record{a, b} {
		if err := f.Scores(r); err != nil {
			t.Fatal(err)
		}
	}
	if st := v.Stats(); st.Scores != 1 {
		t.Fatalf("%d scores in the view, want the one of sealed-a", st.Scores)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if got["minecart_owner_view_shredded_records_total"] != 1 || got["minecart_owner_view_bad_records_total"] != 0 {
		t.Fatalf("shredded %v, bad %v; want 1, 0", got["minecart_owner_view_shredded_records_total"], got["minecart_owner_view_bad_records_total"])
	}
}
