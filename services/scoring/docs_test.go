package scoring

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// docExample is one "```example" block of docs/scoring.md: a vehicle-day's
// events and the DailyScore fields the rules give for them.
type docExample struct {
	name   string
	line   int
	events []telemetry.Event
	want   [][2]string // field, value as printed
	order  []int       // "order" line: arrival order of the events (1-based)
}

// parseDocExamples reads the worked examples of docs/scoring.md. Format
// (docs/scoring.md, "Worked examples"):
//
//	```example <name>
//	day <yyyy-mm-dd> <IANA zone>
//	<hh:mm:ss.mmm> <lat> <lon> <speed km/h> <accel lon m/s²> <accel lat m/s²> <limit km/h> <odometer km> <hdop> [device]  [# comment]
//	...
//	order <i> <i> ...            (optional: arrival order, 1-based)
//	=> <field> <value>, <field> <value>, ...
//	```
func parseDocExamples(t *testing.T) []docExample {
	t.Helper()
	f, err := os.Open("../../docs/scoring.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docExample
	var cur *docExample
	var day time.Time
	var loc *time.Location
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur != nil {
			if i := strings.Index(line, "#"); i > 0 {
				line = strings.TrimSpace(line[:i]) // a comment after an event
			}
		}
		switch {
		case strings.HasPrefix(line, "```example "):
			out = append(out, docExample{name: strings.TrimPrefix(line, "```example "), line: n})
			cur = &out[len(out)-1]
			continue
		case cur == nil:
			continue
		case line == "```":
			cur = nil
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		fail := func(format string, args ...any) {
			t.Fatalf("docs/scoring.md:%d (example %q): %s", n, cur.name, fmt.Sprintf(format, args...))
		}
		fs := strings.Fields(line)
		switch {
		case fs[0] == "day":
			if len(fs) != 3 {
				fail("day <date> <zone>")
			}
			if loc, err = time.LoadLocation(fs[2]); err != nil {
				fail("%v", err)
			}
			if day, err = time.ParseInLocation(time.DateOnly, fs[1], loc); err != nil {
				fail("%v", err)
			}
		case fs[0] == "order":
			for _, s := range fs[1:] {
				k, err := strconv.Atoi(s)
				if err != nil {
					fail("%v", err)
				}
				cur.order = append(cur.order, k-1)
			}
		case fs[0] == "=>":
			for _, kv := range strings.Split(strings.TrimPrefix(line, "=>"), ",") {
				p := strings.Fields(kv)
				if len(p) != 2 {
					fail("field value: %q", kv)
				}
				cur.want = append(cur.want, [2]string{p[0], p[1]})
			}
		default:
			if len(fs) < 9 || len(fs) > 10 || loc == nil {
				fail("an event needs 9 or 10 columns after a day line: %q", line)
			}
			tm, err := time.ParseInLocation("15:04:05.000", fs[0], loc)
			if err != nil {
				fail("%v", err)
			}
			var v [8]float64
			for k := range v {
				if v[k], err = strconv.ParseFloat(fs[k+1], 64); err != nil {
					fail("%v", err)
				}
			}
			dev := "box-1"
			if len(fs) == 10 {
				dev = fs[9]
			}
			seq := uint64(1)
			for _, e := range cur.events {
				if e.DeviceID == dev {
					seq++
				}
			}
			at := time.Date(day.Year(), day.Month(), day.Day(), tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond(), loc)
			cur.events = append(cur.events, telemetry.Event{
				EventID: fmt.Sprintf("%s-%d", dev, seq), DeviceID: dev, VehicleID: "V1", Seq: seq,
				TimeMs: at.UnixMilli(), TZ: loc.String(), Lat: v[0], Lon: v[1], SpeedKmh: v[2],
				AccelLonMS2: v[3], AccelLatMS2: v[4], SpeedLimitKmh: v[5], OdometerKm: v[6], HDOP: v[7],
				EngineOn: true,
			})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// field returns a Result field by its DailyScore name, printed as the docs
// print it.
func field(res *Result, name string) (string, bool) {
	switch name {
	case "distance_km":
		return strconv.FormatFloat(res.DistanceKm, 'f', -1, 64), true
	case "gps_km":
		return strconv.FormatFloat(res.GPSKm, 'f', -1, 64), true
	case "odometer_km":
		return strconv.FormatFloat(res.OdometerKm, 'f', -1, 64), true
	case "gap_km":
		return strconv.FormatFloat(res.GapKm, 'f', -1, 64), true
	case "score":
		return strconv.FormatFloat(res.Score, 'f', -1, 64), true
	case "flags":
		if len(res.Flags) == 0 {
			return "-", true
		}
		return strings.Join(res.Flags, "+"), true
	}
	ints := map[string]int64{"driving_s": res.DrivingS, "speeding_s": res.SpeedingS, "night_s": res.NightS,
		"harsh_brake": int64(res.HarshBrake), "harsh_accel": int64(res.HarshAccel), "harsh_corner": int64(res.HarshCorner),
		"fatigue_events": int64(res.FatigueEvents), "events": res.Events, "late_events": res.LateEvents,
		"gps_jumps": int64(res.GPSJumps), "odometer_rollbacks": int64(res.OdometerRollbacks), "hdop_rejected": res.HDOPRejected,
		"gaps": int64(res.Gaps), "gaps_paid": int64(res.GapsPaid), "points": res.Points}
	v, ok := ints[name]
	return strconv.FormatInt(v, 10), ok
}

// TestDocExamples: every worked example of docs/scoring.md gives, through
// Day.Add and Result under DefaultRules, exactly the fields it states (a
// float to the digits printed), in time order and, when it gives one, in
// its arrival order.
func TestDocExamples(t *testing.T) {
	exs := parseDocExamples(t)
	if len(exs) < 6 {
		t.Fatalf("%d worked examples in docs/scoring.md, want at least 6", len(exs))
	}
	r := DefaultRules()
	for _, ex := range exs {
		t.Run(ex.name, func(t *testing.T) {
			if len(ex.events) == 0 || len(ex.want) == 0 {
				t.Fatalf("docs/scoring.md:%d: an example needs events and a => line", ex.line)
			}
			orders := [][]int{nil}
			if ex.order != nil {
				orders = append(orders, ex.order)
			}
			for _, order := range orders {
				evs := slices.Clone(ex.events)
				slices.SortStableFunc(evs, func(a, b telemetry.Event) int { return int(a.TimeMs - b.TimeMs) })
				if order != nil {
					evs = evs[:0]
					for _, k := range order {
						evs = append(evs, ex.events[k])
					}
				}
				_, res := scoreDay(&r, evs)
				for _, w := range ex.want {
					got, ok := field(&res, w[0])
					if !ok {
						t.Fatalf("docs/scoring.md:%d: unknown field %q", ex.line, w[0])
					}
					if want, err := strconv.ParseFloat(w[1], 64); err == nil && w[0] != "points" {
						g, _ := strconv.ParseFloat(got, 64)
						dec := 0
						if i := strings.IndexByte(w[1], '.'); i >= 0 {
							dec = len(w[1]) - i - 1
						}
						if math.Abs(g-want) > 0.5*math.Pow10(-dec) {
							t.Errorf("docs/scoring.md:%d (order %v): %s = %s, the code gives %s", ex.line, order, w[0], w[1], got)
						}
						continue
					}
					if got != w[1] {
						t.Errorf("docs/scoring.md:%d (order %v): %s = %s, the code gives %s", ex.line, order, w[0], w[1], got)
					}
				}
				if t.Failed() {
					t.Logf("result: %+v", res)
				}
			}
		})
	}
}
