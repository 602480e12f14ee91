package owner

import (
	"context"
	"fmt"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
)

// SettlementBalances reads balances from settlement's state: bindings is a
// table following pipelines.TopicAccounts (vehicle -> owner, Avro framed
// by serde), state one following pipelines.TopicSettlementLog (accounts by
// settlement.AccountKey). A vehicle not bound to an owner shows the holding
// account its credits wait in.
func SettlementBalances(bindings, state settlement.StateReader, serde *schemas.Serde) Balances {
	return settlementBalances{bindings: bindings, state: state, serde: serde}
}

type settlementBalances struct {
	bindings, state settlement.StateReader
	serde           *schemas.Serde
}

func (s settlementBalances) VehicleBalance(_ context.Context, vehicleID string) (Balance, error) {
	var b Balance
	if v, ok := s.bindings.Get(vehicleID); ok && v != nil {
		var x avro.AccountBinding
		if err := s.serde.Unmarshal(v, &x); err != nil {
			return b, fmt.Errorf("binding of %s: %w", vehicleID, err)
		}
		b.Owner = x.Owner
	}
	b.Account = b.Owner
	if b.Account == "" {
		b.Account = settlement.HoldAccount(vehicleID)
	}
	a, err := settlement.ReadAccount(s.state, b.Account)
	if err != nil {
		return b, fmt.Errorf("account %s: %w", b.Account, err)
	}
	b.Balance, b.Reserved, b.Available = a.Balance, a.Reserved, a.Available()
	return b, nil
}
