package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/gateway"
)

// Provision registers a simulated fleet's boxes in the device registry
// (the compacted topic pipelines.TopicDevices) in batches of 1,000, as
// HMAC-SHA256 devices bound to their vehicles in time zone tz: what
// `minecart devices add` does one device at a time, for fleets of any size.
// The gateway's table picks them up as it follows the topic. The secrets
// are sealed under key, the device-registry key the gateway opens them
// with (gateway.Config.DeviceKey). serde nil means schemas.SingleObject().
func Provision(ctx context.Context, p *kafka.Producer, serde *schemas.Serde, key *gateway.RegistryKey, devices []fleet.Device, tz string, now time.Time) error {
	if serde == nil {
		serde = schemas.SingleObject()
	}
	now = now.UTC().Truncate(time.Millisecond)
	recs := make([]kafka.Output, 0, 1000)
	for i, d := range devices {
		gd := gateway.Device{ID: d.DeviceID, VehicleID: d.VehicleID, VehicleTZ: tz, Auth: gateway.AuthHMAC,
			Key: d.Secret, Status: gateway.StatusActive, Created: now, Updated: now}
		v, err := gateway.EncodeDevice(serde, key, &gd)
		if err != nil {
			return fmt.Errorf("provision %s: %w", d.DeviceID, err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicDevices, Key: []byte(d.DeviceID), Value: v})
		if len(recs) == cap(recs) || i == len(devices)-1 {
			if err := p.ProduceBatch(ctx, recs); err != nil {
				return fmt.Errorf("provision: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}
