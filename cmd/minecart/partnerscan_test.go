package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/stack"
	"github.com/minecart/minecart/services/telemetry"
)

// personal is what no partner-readable record may carry: the ids
// (vehicle ids, owner ids) as bytes anywhere in a key, value or header,
// and the positions of the simulated fleet, as Avro doubles (8 bytes
// little-endian) or as decimal text.
type personal struct {
	ids    [][]byte
	coords map[uint64]bool // math.Float64bits of every latitude and longitude
	texts  [][]byte        // the same as strconv 'f' -1 text, 6 bytes or more
	// links are pairs that no one record may carry together (an erased
	// owner's account pseudonym and one of its vehicles' pseudonyms).
	links [][2][]byte
}

// fleetPersonal collects every vehicle id, every owner id the fleet was
// provisioned with (stack.OwnerOf) and every position of sim.
func fleetPersonal(sim *fleet.Sim) personal {
	p := personal{coords: map[uint64]bool{}}
	owners := map[string]bool{}
	seen := map[string]bool{}
	for i, v := range sim.Vehicles() {
		p.ids = append(p.ids, []byte(v.VehicleID))
		owners[stack.OwnerOf(i)] = true
		days := sim.VehicleDays(i)
		for _, d := range days {
			for _, evs := range [][]float64{coordsOf(d.Clean), coordsOf(d.Events), coordsOf(d.Late)} {
				for _, c := range evs {
					p.coords[math.Float64bits(c)] = true
					if s := strconv.FormatFloat(c, 'f', -1, 64); len(s) >= 6 && !seen[s] {
						seen[s] = true
						p.texts = append(p.texts, []byte(s))
					}
				}
			}
		}
	}
	for o := range owners {
		p.ids = append(p.ids, []byte(o))
	}
	return p
}

func coordsOf(evs []telemetry.Event) []float64 {
	out := make([]float64, 0, 2*len(evs))
	for _, e := range evs {
		out = append(out, e.Lat, e.Lon)
	}
	return out
}

// find names what of p the bytes b carry, or "".
func (p personal) find(b []byte) string {
	for _, id := range p.ids {
		if bytes.Contains(b, id) {
			return "id " + string(id)
		}
	}
	for i := 0; i+8 <= len(b); i++ {
		if p.coords[binary.LittleEndian.Uint64(b[i:])] {
			return fmt.Sprintf("coordinate %v (Avro double at byte %d)", math.Float64frombits(binary.LittleEndian.Uint64(b[i:])), i)
		}
	}
	for _, s := range p.texts {
		if bytes.Contains(b, s) {
			return "coordinate " + string(s)
		}
	}
	return ""
}

// partnerTopics are the topics the partner's ACLs let it read (the one
// definition, settlement.PartnerACLs).
func partnerTopics(partner string) []string {
	var out []string
	for _, a := range settlement.PartnerACLs(partner) {
		if a.Resource == "topic" && a.Operation == "Read" && a.Pattern == "literal" {
			out = append(out, a.Name)
		}
	}
	return out
}

// partnerLeaks reads every topic the partner may read, as the partner
// (its SASL/SCRAM user, read_uncommitted: a partner's client may show
// records of aborted transactions too), from the start to the end, and
// returns each record that carries something of p, and how many records
// each topic had.
func partnerLeaks(t *testing.T, ctx context.Context, st *stack.Stack, partner string, p personal) (leaks []string, counts map[string]int) {
	t.Helper()
	cred, ok := st.Credentials.ByRole(broker.RolePartner, partner)
	if !ok {
		t.Fatalf("no credentials for partner %s", partner)
	}
	topics := partnerTopics(partner)
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Broker.Addrs()...), stack.SASL(cred),
		kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	type tp struct {
		topic string
		part  int32
	}
	end := map[tp]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("partner %s: end offset of %s: %v", partner, o.Topic, o.Err)
		}
		if o.Offset > 0 {
			end[tp{o.Topic, o.Partition}] = o.Offset
		}
	})
	counts = map[string]int{}
	for _, tp := range topics {
		counts[tp] = 0
	}
	seen := map[tp]int64{}
	// A partition is read once its record at end-1 is seen, or the one at
	// end-2 and then nothing more (a transaction's marker at end-1, which
	// a consumer never sees as a record).
	done := func(quiet bool) bool {
		for k, e := range end {
			s, ok := seen[k]
			if !ok || s < e-2 || (s == e-2 && !quiet) {
				return false
			}
		}
		return true
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	for !done(false) {
		pctx, cancel := context.WithTimeout(rctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if rctx.Err() != nil {
			t.Fatalf("partner %s: reading the partner topics: %v (read %v of %v)", partner, rctx.Err(), seen, end)
		}
		fs.EachError(func(topic string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("partner %s reading %s: %v", partner, topic, err)
			}
		})
		if fs.NumRecords() == 0 && done(true) {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			counts[r.Topic]++
			k := tp{r.Topic, r.Partition}
			if cur, ok := seen[k]; !ok || r.Offset > cur {
				seen[k] = r.Offset
			}
			parts := [][]byte{r.Key, r.Value}
			for _, h := range r.Headers {
				parts = append(parts, []byte(h.Key), h.Value)
			}
			for _, b := range parts {
				if what := p.find(b); what != "" {
					leaks = append(leaks, fmt.Sprintf("%s offset %d: %s", r.Topic, r.Offset, what))
					break
				}
			}
			all := bytes.Join(parts, nil)
			for _, l := range p.links {
				if bytes.Contains(all, l[0]) && bytes.Contains(all, l[1]) {
					leaks = append(leaks, fmt.Sprintf("%s offset %d: links %s and %s", r.Topic, r.Offset, l[0], l[1]))
				}
			}
		})
	}
	return leaks, counts
}
