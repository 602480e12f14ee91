package stack

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/shred"
)

// Activity is a snapshot of how much each stage has processed.
type Activity struct {
	In   map[string]float64 // records consumed, by stage
	Dead map[string]float64 // records dead-lettered, by stage
	Lag  map[string]float64 // records behind, by stage (sum over partitions)
	Sunk float64            // rows the sink inserted into ClickHouse
	// ReleasedThrough is the ledger's lowest scoring watermark: every
	// vehicle-day ending by then is scored and handed to the ledger.
	ReleasedThrough time.Time
}

// Activity reads the stages' counters from the metrics registry.
func (s *Stack) Activity() (Activity, error) {
	a := Activity{In: map[string]float64{}, Dead: map[string]float64{}, Lag: map[string]float64{}}
	mfs, err := s.Registry.Gather()
	if err != nil {
		return a, err
	}
	for _, mf := range mfs {
		var into map[string]float64
		switch mf.GetName() {
		case "minecart_pipeline_records_in_total":
			into = a.In
		case "minecart_pipeline_records_dead_total":
			into = a.Dead
		case "minecart_pipeline_consumer_lag":
			into = a.Lag
		case "minecart_ledger_released_through_ms":
			for _, m := range mf.GetMetric() {
				a.ReleasedThrough = time.UnixMilli(int64(m.GetGauge().GetValue()))
			}
			continue
		case "minecart_sink_inserted_rows_total":
			for _, m := range mf.GetMetric() {
				a.Sunk += m.GetCounter().GetValue()
			}
			continue
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			stage := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" {
					stage = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			into[stage] += v
		}
	}
	return a, nil
}

func (a Activity) same(b Activity) bool {
	eq := func(x, y map[string]float64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	// Consumed records: every produced record that matters is consumed by
	// the next stage (or landed by the sink).
	return eq(a.In, b.In) && eq(a.Dead, b.Dead) && a.Sunk == b.Sunk
}

// WaitSettled returns once every vehicle-day ending by end has been scored
// and released to the ledger (the ledger's lowest scoring watermark >= end)
// and every stage has been idle for quiet: the ledger has appended the
// credits and settlement has booked them.
func (s *Stack) WaitSettled(ctx context.Context, end time.Time, quiet time.Duration, progress func(Activity)) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last Activity
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.failed:
			return s.Err()
		case <-tick.C:
		}
		a, err := s.Activity()
		if err != nil {
			return err
		}
		if progress != nil {
			progress(a)
		}
		s.cfg.Logger.Debug("settling", "released_through", a.ReleasedThrough, "end", end, "quiet", a.same(last), "in", a.In)
		if a.ReleasedThrough.Before(end) || !a.same(last) {
			last, since = a, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return nil
		}
	}
}

// Driver is one vehicle-day's score in the summary.
type Driver struct {
	VehicleID string
	Date      string
	Score     float64
	Points    int64
	KM        float64
	Flags     []string
}

// Balance is one account in the summary.
type Balance struct {
	Owner     string
	Balance   int64
	Available int64
}

// Summary is what a run produced, read back from Kafka.
type Summary struct {
	Scores       int
	Flagged      int
	PointsScored int64
	DeadLetters  int64
	DeadByReason map[string]int64 // "stage/reason" -> records
	LateEvents   int64
	LedgerHeight uint64
	TreeSize     uint64
	Root         string // hex
	Checkpoint   string
	Accounts     int
	Outstanding  int64 // sum of balances
	TopDrivers   []Driver
	TopBalances  []Balance
}

// Summary reads the scores, the ledger head and the balances.
func (s *Stack) Summary(ctx context.Context, top int) (Summary, error) {
	var sum Summary
	var drivers []Driver
	latest := map[string]int{} // score id -> index in drivers of its highest revision (late data re-scores a day)
	revs := map[string]int32{}
	err := s.scan(ctx, pipelines.TopicScores, func(r pipelines.Record) error {
		if strings.HasPrefix(string(r.Key), "wm/") {
			return nil
		}
		v, err := s.ClearScore(ctx, r)
		if err != nil || v == nil {
			return err // nil: shredded (erased), names nobody
		}
		var ds avro.DailyScore
		if err := s.Serde.Unmarshal(v, &ds); err != nil {
			return nil // not a score: the ledger dead-letters it
		}
		d := Driver{VehicleID: ds.VehicleID, Date: ds.Date, Score: ds.Score, Points: ds.Points,
			KM: ds.DistanceKm, Flags: append([]string(nil), ds.Flags...)}
		if i, ok := latest[ds.ID]; ok {
			if ds.Revision > revs[ds.ID] {
				drivers[i], revs[ds.ID] = d, ds.Revision
			}
			return nil
		}
		latest[ds.ID], revs[ds.ID] = len(drivers), ds.Revision
		drivers = append(drivers, d)
		return nil
	})
	if err != nil {
		return sum, err
	}
	sum.DeadByReason = map[string]int64{}
	err = s.scan(ctx, pipelines.TopicDeadLetter, func(r pipelines.Record) error {
		sum.DeadLetters++
		var d avro.DeadLetter
		if err := s.Serde.Unmarshal(r.Value, &d); err != nil {
			sum.DeadByReason["undecodable"]++
			return nil
		}
		sum.DeadByReason[d.Stage+"/"+d.ReasonCode]++
		return nil
	})
	if err != nil {
		return sum, err
	}
	err = s.scan(ctx, pipelines.TopicLateEvents, func(pipelines.Record) error { sum.LateEvents++; return nil })
	if err != nil {
		return sum, err
	}
	for _, d := range drivers {
		sum.Scores++
		sum.PointsScored += d.Points
		if len(d.Flags) > 0 {
			sum.Flagged++
		}
	}
	sort.Slice(drivers, func(i, j int) bool {
		if drivers[i].Points != drivers[j].Points {
			return drivers[i].Points > drivers[j].Points
		}
		return drivers[i].VehicleID < drivers[j].VehicleID
	})
	sum.TopDrivers = drivers[:min(top, len(drivers))]

	h, err := s.Ledger.Head(ctx)
	if err != nil {
		return sum, err
	}
	sum.LedgerHeight, sum.TreeSize, sum.Root, sum.Checkpoint = h.Height, h.TreeSize, h.Root, h.Checkpoint
	if h.Blocks == 0 {
		sum.Root = merkle.Hash{}.String() // no head yet
	}

	var bals []Balance
	s.state.Range(func(k string, v []byte) bool {
		if !strings.HasPrefix(k, settlement.AccountKey("")) {
			return true // not an account's record
		}
		a, err := settlement.DecodeAccount(v)
		if err != nil {
			return true // not an account record
		}
		sum.Accounts++
		sum.Outstanding += a.Balance
		bals = append(bals, Balance{Owner: a.ID, Balance: a.Balance, Available: a.Available()})
		return true
	})
	sort.Slice(bals, func(i, j int) bool {
		if bals[i].Balance != bals[j].Balance {
			return bals[i].Balance > bals[j].Balance
		}
		return bals[i].Owner < bals[j].Owner
	})
	sum.TopBalances = bals[:min(top, len(bals))]
	return sum, nil
}

// scan calls fn for every committed record of topic up to the ends its
// partitions had when scan began (the runtime's Reader).
func (s *Stack) scan(ctx context.Context, topic string, fn func(pipelines.Record) error) error {
	rd, err := kafka.NewReader(s.Pipelines)
	if err != nil {
		return err
	}
	defer rd.Close()
	ends, err := rd.Ends(ctx, topic)
	if err != nil {
		return err
	}
	for p, end := range ends {
		if err := rd.Read(ctx, topic, p, 0, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// ClearScore is the value of a scores record in clear: the inner record
// of a sealed one (docs/privacy.md), nil when its vehicle's key is
// destroyed (erased), the record's own value otherwise. A sealed value
// that does not open is an error.
func (s *Stack) ClearScore(ctx context.Context, r pipelines.Record) ([]byte, error) {
	rd := shred.Reader{Keys: s.Pseudonyms, Serde: s.Serde}
	_, v, _, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
	if errors.Is(err, shred.ErrShredded) {
		return nil, nil
	}
	return v, err
}
