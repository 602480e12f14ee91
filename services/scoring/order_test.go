package scoring

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// busyDay is one honest-looking day with every feature a join must carry:
// harsh episodes (some across batch boundaries), speeding runs, night and
// fatigue-length driving, stops, a power loss, GPS outliers, HDOP
// rejects, 20 Hz bursts with repeated fixes and odometer readings.
func busyDay(seed uint64) []telemetry.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	tr := newTrip("v", time.Date(2026, 11, 24, 3, 0, 0, 0, shanghai), seed+1)
	for range 12 {
		switch rng.IntN(7) {
		case 0:
			tr.Drive(30+rng.IntN(400), 20+rng.Float64()*100, at(rng.IntN(30), rng.IntN(30)+3, lonAccel(-0.3-rng.Float64()/3)))
		case 1:
			lim := func(_ int, ev *telemetry.Event) { ev.SpeedLimitKmh = 50 }
			tr.Drive(5+rng.IntN(40), 70, lim).Drive(5+rng.IntN(20), 50, lim)
		case 2:
			tr.Stop(time.Duration(rng.IntN(1500)) * time.Second)
		case 3:
			tr.Drive(100+rng.IntN(300), 60, at(50, 51, func(ev *telemetry.Event) { ev.Lat += 0.3 }),
				at(70, 90, func(ev *telemetry.Event) { ev.HDOP = 9 }), at(20, 25, latAccel(0.45)))
		case 4: // 20 Hz, the GPS fix repeated between fresh 1 Hz fixes
			tr.PeriodMs = 50
			var lat, lon float64
			tr.Drive(200+rng.IntN(200), 50, func(i int, ev *telemetry.Event) {
				if i%20 == 0 {
					lat, lon = ev.Lat, ev.Lon
				} else {
					ev.Lat, ev.Lon = lat, lon
				}
			}, at(40, 44, lonAccel(0.4)))
			tr.PeriodMs = 1000
		case 5:
			tr.Drive(60+rng.IntN(60), 0)
		case 6:
			tr.Drive(3000+rng.IntN(3000), 80)
		}
	}
	return tr.Evs
}

// batches cuts evs into n contiguous upload batches at random points.
func batches(rng *rand.Rand, evs []telemetry.Event, n int) [][]telemetry.Event {
	cuts := []int{0, len(evs)}
	for len(cuts) < n+1 {
		c := 1 + rng.IntN(len(evs)-1)
		if !slices.Contains(cuts, c) {
			cuts = append(cuts, c)
		}
	}
	slices.Sort(cuts)
	var out [][]telemetry.Event
	for i := range n {
		out = append(out, evs[cuts[i]:cuts[i+1]])
	}
	return out
}

func scoreBatches(r *Rules, bs [][]telemetry.Event) (*Day, Result) {
	var all []telemetry.Event
	for _, b := range bs {
		all = append(all, b...)
	}
	return scoreDay(r, all)
}

// TestOrderDoesNotMatter: a day's upload batches, in any order, give the
// same DailyScore, events_hash included (property test over random days,
// cuts and permutations, up to MaxSegments batches).
func TestOrderDoesNotMatter(t *testing.T) {
	r := DefaultRules()
	for seed := range uint64(6) {
		evs := busyDay(seed)
		_, want := scoreDay(&r, evs)
		if want.LateEvents != 0 || want.DistanceKm < 1 {
			t.Fatalf("seed %d: bad test day %+v", seed, want)
		}
		rng := rand.New(rand.NewPCG(seed, 9))
		for range 8 {
			bs := batches(rng, evs, 2+rng.IntN(MaxSegments-1))
			rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
			d, got := scoreBatches(&r, bs)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d, %d batches: got\n%+v\nwant\n%+v", seed, len(bs), got, want)
			}
			if len(d.segs) != 1 {
				t.Fatalf("seed %d: %d segments left, want 1 (contiguous by seq)", seed, len(d.segs))
			}
		}
	}
}

// TestOrderWithoutSeq: events without usable sequence numbers (all 0) do
// not join by seq; the day still scores the same in order, as long as
// batches arrive in time order or at most MaxSegments runs are open.
func TestOrderWithoutSeq(t *testing.T) {
	r := DefaultRules()
	evs := slices.Clone(busyDay(3))
	for i := range evs {
		evs[i].Seq = 0
	}
	_, want := scoreDay(&r, busyDay(3))
	_, got := scoreDay(&r, evs)
	want.EventsHash, got.EventsHash = [32]byte{}, [32]byte{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("without seq\n%+v\nwant\n%+v", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	bs := batches(rng, evs, MaxSegments)
	rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
	// Each batch's events join each other only when the cap forces it:
	// within a batch they are in time order, so the smallest gaps are
	// inside batches and every batch stays one run.
	_, got = scoreBatches(&r, bs)
	got.EventsHash = [32]byte{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shuffled without seq\n%+v\nwant\n%+v", got, want)
	}
}

// TestTooManyRunsAreBounded: more out-of-order runs than MaxSegments keep
// the state bounded; an event then landing inside a joined span is late.
func TestTooManyRunsAreBounded(t *testing.T) {
	r := DefaultRules()
	evs := newTrip("v", morning(), 4).Drive(400, 50).Evs
	d := NewDay(morning().Add(-8*time.Hour).UnixMilli(), morning().Add(16*time.Hour).UnixMilli(), 5*3600000)
	var buf []byte
	for i := 0; i < len(evs); i += 20 { // every 20th event first: 20 runs
		buf = d.Add(&r, &evs[i], buf)
	}
	if len(d.segs) != MaxSegments {
		t.Fatalf("%d segments, want %d", len(d.segs), MaxSegments)
	}
	for i := range evs {
		if i%20 != 0 {
			buf = d.Add(&r, &evs[i], buf)
		}
	}
	res := d.Result(&r)
	if res.Events != 400 || res.LateEvents == 0 || len(d.segs) > MaxSegments {
		t.Fatalf("events %d late %d segs %d", res.Events, res.LateEvents, len(d.segs))
	}
}

// randomEvents makes n events with every feature at random: speeds around
// the thresholds, accelerations around the harsh levels, repeated fixes,
// outliers, gaps, odometer wobble and rollbacks, HDOP, two devices.
func randomEvents(data []byte, n int) []telemetry.Event {
	var seed uint64
	if len(data) >= 8 {
		seed = binary.LittleEndian.Uint64(data)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(data))))
	t := int64(3600_000)
	lat, lon, odo := 31.2, 121.4, 1000.0
	swap := rng.IntN(2*n + 1) // from here on a replacement box "e", its own seq
	evs := make([]telemetry.Event, n)
	for i := range evs {
		switch rng.IntN(20) {
		case 0:
			t += int64(rng.IntN(3600_000))
		case 1:
			t += int64(50)
		case 2, 3:
			t += int64(2000 + rng.IntN(8000))
		default:
			t += int64(500 + rng.IntN(1000))
		}
		v := []float64{0, 2, 4, 6, 12, 35, 60, 140}[rng.IntN(8)] + rng.Float64()
		if rng.IntN(3) > 0 {
			lat += rng.Float64() * 2e-4
			lon += rng.Float64() * 2e-4
		}
		odo += rng.Float64() * 0.05
		e := telemetry.Event{Seq: uint64(i + 1), TimeMs: t, DeviceID: "d", SpeedKmh: v, Lat: lat, Lon: lon, HDOP: 1, OdometerKm: odo,
			AccelLonMS2: (rng.Float64()*1.2 - 0.6) * G, AccelLatMS2: (rng.Float64()*1.2 - 0.6) * G, SpeedLimitKmh: float64(rng.IntN(2)) * 50}
		switch rng.IntN(12) {
		case 0:
			e.Lat += 1 // outlier
		case 1:
			e.HDOP = 9
		case 2:
			e.Lat, e.Lon = 0, 0
		case 3:
			e.OdometerKm = 0
		case 4:
			e.OdometerKm -= rng.Float64()
		}
		if i >= swap {
			e.DeviceID, e.Seq = "e", uint64(i-swap+1)
		}
		evs[i] = e
	}
	return evs
}

// FuzzSegmentJoin: join is associative. Folding random events one by one
// gives bit for bit the seg that joining the folds of any split gives, and
// a Day fed the events' batches in any order gives the same Result.
func FuzzSegmentJoin(f *testing.F) {
	f.Add([]byte("12345678"), uint8(40), uint8(3))
	f.Add([]byte("abcdefgh"), uint8(200), uint8(7))
	f.Add([]byte{}, uint8(5), uint8(1))
	r := DefaultRules()
	// Short fatigue and speeding windows, so that random days exercise
	// stretches and runs across joins.
	r.FatigueAfter, r.FatigueBreak, r.SpeedMinDuration = 20*time.Second, 5*time.Second, 3*time.Second
	f.Fuzz(func(t *testing.T, data []byte, n, cuts uint8) { checkJoin(t, &r, data, n, cuts) })
}

// TestJoinAssociative runs FuzzSegmentJoin's check over many seeds.
func TestJoinAssociative(t *testing.T) {
	r := DefaultRules()
	r.FatigueAfter, r.FatigueBreak, r.SpeedMinDuration = 20*time.Second, 5*time.Second, 3*time.Second
	for i := range 400 {
		checkJoin(t, &r, binary.LittleEndian.AppendUint64(nil, uint64(i)), uint8(2+i%250), uint8(i))
	}
}

func checkJoin(t *testing.T, rp *Rules, data []byte, n, cuts uint8) {
	t.Helper()
	r := *rp
	if n < 2 {
		return
	}
	evs := randomEvents(data, int(n))
	const nightEnd = 5 * 3600000
	fold := func(evs []telemetry.Event) seg {
		s := newSeg(&r, &evs[0], uint32(evs[0].TimeMs), 0, nightEnd)
		for i := 1; i < len(evs); i++ {
			x := newSeg(&r, &evs[i], uint32(evs[i].TimeMs), 0, nightEnd)
			s = join(&r, &s, &x, nightEnd)
		}
		return s
	}
	whole := fold(evs)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(cuts)))
	k := 1 + int(cuts)%min(MaxSegments, len(evs)-1)
	bs := batches(rng, evs, k)
	split := fold(bs[0])
	for _, b := range bs[1:] {
		x := fold(b)
		split = join(&r, &split, &x, nightEnd)
	}
	if !reflect.DeepEqual(whole, split) {
		t.Fatalf("join is not associative over %d batches:\n%+v\n%+v", k, whole, split)
	}
	// Right-nested too.
	right := fold(bs[len(bs)-1])
	for i := len(bs) - 2; i >= 0; i-- {
		x := fold(bs[i])
		right = join(&r, &x, &right, nightEnd)
	}
	if !reflect.DeepEqual(whole, right) {
		t.Fatalf("right-nested joins differ over %d batches", k)
	}
	d1 := NewDay(0, 86400000*2, nightEnd)
	d2 := NewDay(0, 86400000*2, nightEnd)
	var buf []byte
	for i := range evs {
		buf = d1.Add(&r, &evs[i], buf)
	}
	rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
	for _, b := range bs {
		for i := range b {
			buf = d2.Add(&r, &b[i], buf)
		}
	}
	r1, r2 := d1.Result(&r), d2.Result(&r)
	if !reflect.DeepEqual(r1, r2) || math.IsNaN(r1.DistanceKm) {
		t.Fatalf("arrival order changed the result:\n%+v\n%+v", r1, r2)
	}
}

// TestSegCodecMatchesBinary: the hand-written changelog codec writes
// exactly encoding/binary's layout of seg (what docs/scoring.md states)
// and reads it back.
func TestSegCodecMatchesBinary(t *testing.T) {
	r := DefaultRules()
	for i := range 50 {
		evs := randomEvents(binary.LittleEndian.AppendUint64(nil, uint64(i)), 2+i*3)
		d := NewDay(0, 2*86400000, 5*3600000)
		var buf []byte
		for k := range evs {
			buf = d.Add(&r, &evs[k], buf)
		}
		for _, s := range d.segs {
			want, err := binary.Append(nil, binary.LittleEndian, &s)
			if err != nil {
				t.Fatal(err)
			}
			got := appendSeg(nil, &s)
			if !slices.Equal(got, want) {
				t.Fatalf("appendSeg differs from binary.Append")
			}
			var back seg
			rest, ok := readSeg(got, &back)
			if !ok || len(rest) != 0 || back != s {
				t.Fatalf("readSeg: ok %v rest %d equal %v", ok, len(rest), back == s)
			}
			if _, ok := readSeg(got[:len(got)-1], &back); ok {
				t.Fatal("truncated seg read")
			}
		}
	}
}

// TestWindowsOutOfOrderUploads: through Windows (stream time, closing,
// changelog restore in the middle), vehicles whose upload batches arrive
// shuffled within the grace close with the same scores as in order.
func TestWindowsOutOfOrderUploads(t *testing.T) {
	run := func(shuffle bool) []string {
		w := newTestWindows(t)
		var c collector
		rng := rand.New(rand.NewPCG(5, 5))
		var all [][]telemetry.Event
		for v := range 6 {
			evs := newTrip(fmt.Sprintf("veh-%d", v), morning().Add(time.Duration(v)*time.Minute), uint64(v+1)).
				Drive(900, 60, at(100, 102, lonAccel(-0.5))).Coast(10*time.Minute, 50).Drive(900, 60).Evs
			bs := batches(rng, evs, 6)
			if shuffle {
				rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
			}
			all = append(all, bs...)
		}
		if shuffle { // vehicles interleaved, batches out of order
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		}
		for k, b := range all {
			for i := range b {
				c.add(t, w, &b[i])
			}
			if k == len(all)/2 { // restart from the changelog mid-way
				w2 := newTestWindows(t)
				w.Flush(func(key string, v []byte) {
					if err := w2.Restore(key, v); err != nil {
						t.Fatal(err)
					}
				})
				w = w2
			}
		}
		w.Advance(morning().Add(48*time.Hour).UnixMilli(), c.onClose)
		if len(c.late) != 0 {
			t.Fatalf("late: %v", c.late)
		}
		slices.Sort(c.closed)
		return c.closed
	}
	want, got := run(false), run(true)
	if len(want) != 6 || !slices.Equal(got, want) {
		t.Fatalf("shuffled uploads scored\n%v\nin order\n%v", got, want)
	}
	t.Log(want)
}
