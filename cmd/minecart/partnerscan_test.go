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
	nonEmpty := map[string]bool{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("partner %s: end offset of %s: %v", partner, o.Topic, o.Err)
		}
		if o.Offset > 0 {
			nonEmpty[o.Topic] = true
		}
	})
	counts = map[string]int{}
	for _, tp := range topics {
		counts[tp] = 0
	}
	// Read until two polls in a row bring nothing (the end offsets may be
	// transaction markers, which a consumer never sees as records).
	for quiet := 0; quiet < 2; {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		fs.EachError(func(topic string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("partner %s reading %s: %v", partner, topic, err)
			}
		})
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		quiet = 0
		fs.EachRecord(func(r *kgo.Record) {
			counts[r.Topic]++
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
	for tp := range nonEmpty {
		if counts[tp] == 0 {
			t.Fatalf("partner %s read nothing of %s, which is not empty", partner, tp)
		}
	}
	return leaks, counts
}
