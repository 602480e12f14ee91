package web

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
)

// Ranger is a followed compacted topic (a kafka.Table).
type Ranger interface {
	Range(fn func(key string, value []byte) bool)
}

// BoundVehicles is Config.Vehicles over a table following
// pipelines.TopicAccounts (vehicle -> AccountBinding, framed by serde).
// It scans the table: fine for the demo's thousands of bindings; a large
// fleet wants an owner -> vehicles index.
func BoundVehicles(bindings Ranger, serde *schemas.Serde) func(owner string) []string {
	return func(owner string) []string {
		var out []string
		bindings.Range(func(vehicle string, v []byte) bool {
			var b avro.AccountBinding
			if v != nil && serde.Unmarshal(v, &b) == nil && b.Owner == owner {
				out = append(out, vehicle)
			}
			return true
		})
		return out
	}
}

// SettlementCatalog is Config.Catalog over a table following
// pipelines.TopicSettlementLog: its catalogue items' states
// (settlement.ItemStateKey, JSON), the active ones.
func SettlementCatalog(state Ranger) func() ([]CatalogItem, error) {
	prefix := strings.TrimSuffix(settlement.ItemStateKey("", ""), "/")
	return func() ([]CatalogItem, error) {
		var out []CatalogItem
		var err error
		state.Range(func(key string, v []byte) bool {
			if !strings.HasPrefix(key, prefix) || v == nil {
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
			out = append(out, CatalogItem{Partner: st.Item.Partner, ItemID: st.Item.ItemID, Title: st.Item.Title,
				PricePoints: st.Item.PricePoints, Left: left})
			return true
		})
		return out, err
	}
}
