package stack

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/web"
)

// mountWeb serves the web faces (services/web): the owner app at /, the
// block explorer at /explorer, the operator console at /console and their
// assets under /assets/, with the vehicles of an owner from the bindings
// table and the catalogue from settlement's state.
func (s *Stack) mountWeb(mux *auth.Mux) error {
	h, err := web.NewHandler(web.Config{
		Auth: s.Auth, LedgerKey: s.LedgerKey.Public().(ed25519.PublicKey),
		Vehicles: s.ownerVehicles, Catalog: s.catalog, Metrics: s.Registry, Logger: s.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	for _, p := range []string{"GET /{$}", "GET /explorer", "GET /console", "GET /assets/", "/v1/me/", "/v1/catalog", "/v1/console/"} {
		mux.Mount(p, h)
	}
	return nil
}

// ownerVehicles lists the vehicles bound to owner now.
func (s *Stack) ownerVehicles(owner string) []string {
	var out []string
	s.bindings.Range(func(vehicle string, v []byte) bool {
		var b avro.AccountBinding
		if v != nil && s.Serde.Unmarshal(v, &b) == nil && b.Owner == owner {
			out = append(out, vehicle)
		}
		return true
	})
	return out
}

// catalog lists the active catalogue items in settlement's state.
func (s *Stack) catalog() ([]web.CatalogItem, error) {
	var out []web.CatalogItem
	var err error
	s.state.Range(func(key string, v []byte) bool {
		if !strings.HasPrefix(key, "i/") || v == nil {
			return true
		}
		var st settlement.ItemState
		if e := json.Unmarshal(v, &st); e != nil {
			err = fmt.Errorf("catalogue item %s: %w", key, e)
			return false
		}
		if !st.Item.Active {
			return true
		}
		left := int64(-1)
		if st.Item.Stock != nil {
			left = max(*st.Item.Stock-st.Sold, 0)
		}
		out = append(out, web.CatalogItem{Partner: st.Item.Partner, ItemID: st.Item.ItemID, Title: st.Item.Title,
			PricePoints: st.Item.PricePoints, Left: left})
		return true
	})
	return out, err
}
