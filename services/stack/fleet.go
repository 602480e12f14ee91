package stack

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	settleapi "github.com/minecart/minecart/services/settlement/api"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/gateway"
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
	if err := loadtest.Provision(ctx, s.Producer, s.Serde, s.DeviceKey, sim.Devices(), vs[0].TZ, at); err != nil {
		return err
	}
	ids := make([]string, 0, len(vs))
	for _, d := range sim.Devices() {
		ids = append(ids, d.DeviceID)
	}
	if err := s.Gateway.WaitDevices(ctx, ids); err != nil {
		return err
	}
	for i, v := range vs {
		if err := settleapi.BindVehicle(ctx, s.Producer, s.Serde, v.VehicleID, OwnerOf(i), at); err != nil {
			return err
		}
	}
	for _, it := range []avro.CatalogItem{
		{Partner: SimPartner, ItemID: "coffee", Title: "A cup of coffee", PricePoints: 50, Active: true, UpdatedMs: at},
		{Partner: SimPartner, ItemID: "carwash", Title: "Car wash", PricePoints: 300, Active: true, UpdatedMs: at},
		{Partner: SimPartner, ItemID: "fuel-20", Title: "20 litres of fuel", PricePoints: 2000, Active: true, UpdatedMs: at},
	} {
		if err := settleapi.PutItem(ctx, s.Producer, s.Serde, &it, s.ensurePartner); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartner creates a partner's topics (settlement's EnsurePartner).
func (s *Stack) ensurePartner(ctx context.Context, partner string) error {
	return kafka.EnsureTopicsWith(ctx, s.Pipelines, settlement.PartnerTopics(partner))
}

// SimClock is the simulated intake clock of the stack's gateway: the
// fleet sets it as it uploads, so the time marks, and with them every
// close of a day, follow simulated time, never the wall clock.
type SimClock struct{ ms atomic.Int64 }

// Now is the clock's time (the zero time before the first Set).
func (c *SimClock) Now() time.Time {
	if ms := c.ms.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Set moves the clock to t; it never moves back.
func (c *SimClock) Set(t time.Time) {
	for {
		old := c.ms.Load()
		if t.UnixMilli() <= old || c.ms.CompareAndSwap(old, t.UnixMilli()) {
			return
		}
	}
}

// gatewayID is the id of the stack's gateway in its time marks.
const gatewayID = "gateway-0"

// SendFleet drives a simulated fleet through the gateway over HTTP, as the
// boxes would (signed batches, per-device order, retries), with no outage:
// SendDeliveries with no Outages.
func (s *Stack) SendFleet(ctx context.Context, sim *fleet.Sim, from int, cfg loadtest.SenderConfig, done func(chunk int, sofar loadtest.Report) error) (loadtest.Report, error) {
	return s.SendDeliveries(ctx, sim, fleet.Outages{}, from, cfg, done)
}

// SendDeliveries drives a simulated fleet through the gateway over HTTP,
// delivery by delivery (fleet.Sim.Deliveries: each window's events at the
// window's end, later for boxes offline then or while the gateway is
// down), from delivery number from on, and goes on past the simulation's
// end until its end plus Grace, so the last day closes. Before each
// delivery the fleet sets the intake clock (Clock) to the delivery's time
// and the gateway writes its time marks and waits for them to be
// acknowledged, so the marks sit in the log exactly between deliveries and
// every run closes the same days. While the gateway is down it writes no
// marks; when it is back it starts as a restarted gateway does: reading
// its last marks back from the log and catching up from them
// (gateway.MarkConfig). Each delivery is fully acknowledged before the
// next starts, and done(k, sent so far) is called once delivery k is: a
// caller that records k can resume after a restart without re-uploading
// what was accepted.
func (s *Stack) SendDeliveries(ctx context.Context, sim *fleet.Sim, out fleet.Outages, from int, cfg loadtest.SenderConfig, done func(chunk int, sofar loadtest.Report) error) (loadtest.Report, error) {
	if err := out.Validate(len(sim.Vehicles())); err != nil {
		return loadtest.Report{}, err
	}
	until := sim.End().Add(s.cfg.Grace)
	for _, sp := range out.Gateway {
		if sp.To.After(until) {
			return loadtest.Report{}, fmt.Errorf("gateway outage ends at %v, after the simulation's end + grace %v", sp.To, until)
		}
	}
	for _, sp := range out.Offline {
		if sp.To.After(until) {
			return loadtest.Report{}, fmt.Errorf("vehicle %d is offline until %v, after the simulation's end + grace %v", sp.Vehicle, sp.To, until)
		}
	}
	cfg.URL = "http://" + s.HTTPAddr()
	cfg.Devices = sim.Devices()
	if cfg.Client == nil {
		// One connection pool for every chunk's sender: a pool per chunk
		// would leave its idle connections open (file descriptors the
		// broker in this same process needs).
		conns := 2 * max(cfg.Concurrency, 16)
		tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second}
		defer tr.CloseIdleConnections()
		cfg.Client = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	}
	var total loadtest.Report
	k := 0
	for d := range sim.Deliveries(out, until) {
		if k < from {
			k++
			continue
		}
		if d.Down {
			s.marker = nil // the gateway is down: no marks, no uploads
		} else {
			if s.marker == nil {
				m, err := s.Gateway.NewMarker(ctx, gateway.MarkConfig{ID: gatewayID, Clock: s.Clock.Now})
				if err != nil {
					return total, err
				}
				s.marker = m
			}
			s.Clock.Set(d.At)
			if err := s.marker.Write(ctx); err != nil {
				return total, err
			}
		}
		if len(d.Events) > 0 {
			sender, err := loadtest.NewSender(cfg)
			if err != nil {
				return total, err
			}
			if err := sender.Send(ctx, d.Events); err != nil {
				sender.Abort()
				return total, err
			}
			rep, err := sender.Close()
			total = addReports(total, rep)
			if err != nil {
				return total, err
			}
			if rep.Failed > 0 {
				return total, fmt.Errorf("delivery %d: %d events not accepted after retries", k, rep.Failed)
			}
		}
		if done != nil {
			if err := done(k, total); err != nil {
				return total, err
			}
		}
		k++
	}
	return total, nil
}

func addReports(a, b loadtest.Report) loadtest.Report {
	a.Events += b.Events
	a.Batches += b.Batches
	a.Bytes += b.Bytes
	a.Retries += b.Retries
	a.Rejected += b.Rejected
	a.Failed += b.Failed
	a.Elapsed += b.Elapsed
	if a.Elapsed > 0 {
		a.EventsPerSec = float64(a.Events) / a.Elapsed.Seconds()
	}
	a.P50, a.P99 = max(a.P50, b.P50), max(a.P99, b.P99)
	for k, v := range b.Rejects {
		if a.Rejects == nil {
			a.Rejects = map[string]int64{}
		}
		a.Rejects[k] += v
	}
	return a
}
