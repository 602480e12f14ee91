package stack

import (
	"context"
	"fmt"
	"iter"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/settlement"
)

// SimPartner is the partner whose catalog simulated owners can redeem.
const SimPartner = "acme"

// OwnerOf is the simulated owner of the vehicle at index i: two vehicles
// per owner.
func OwnerOf(i int) string { return fmt.Sprintf("owner-%05d", i/2) }

// ProvisionFleet registers a simulated fleet: its boxes in the device
// registry, its vehicles under owner accounts and a partner catalog.
// Records are keyed and stamped with the simulation's start, so doing it
// again after a restart changes nothing.
func (s *Stack) ProvisionFleet(ctx context.Context, sim *fleet.Sim) error {
	at := sim.Start()
	vs := sim.Vehicles()
	if err := loadtest.Provision(ctx, s.Producer, s.Serde, sim.Devices(), vs[0].TZ, at); err != nil {
		return err
	}
	for i, v := range vs {
		if err := settlement.BindVehicle(ctx, s.Producer, s.Serde, v.VehicleID, OwnerOf(i), at); err != nil {
			return err
		}
	}
	for _, it := range []settlement.CatalogItem{
		{Partner: SimPartner, ItemID: "coffee", Title: "A cup of coffee", PricePoints: 50, Active: true, UpdatedAt: at},
		{Partner: SimPartner, ItemID: "carwash", Title: "Car wash", PricePoints: 300, Active: true, UpdatedAt: at},
		{Partner: SimPartner, ItemID: "fuel-20", Title: "20 litres of fuel", PricePoints: 2000, Active: true, UpdatedAt: at},
	} {
		if err := settlement.PutCatalogItem(ctx, s.Pipelines.Brokers, s.Producer, s.Serde, it); err != nil {
			return err
		}
	}
	return nil
}

// SendFleet drives chunks of a simulated fleet through the gateway over
// HTTP, as the boxes would: signed batches, per-device order, retries.
func (s *Stack) SendFleet(ctx context.Context, sim *fleet.Sim, chunks iter.Seq[fleet.Chunk], cfg loadtest.SenderConfig) (loadtest.Report, error) {
	cfg.URL = "http://" + s.HTTPAddr()
	cfg.Devices = sim.Devices()
	sender, err := loadtest.NewSender(cfg)
	if err != nil {
		return loadtest.Report{}, err
	}
	return sender.SendChunks(ctx, chunks)
}
