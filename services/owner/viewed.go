package owner

import (
	"sync"
	"time"

	"github.com/minecart/minecart/services/owner/view"
)

// The answers from the in-memory view (Config.View, services/owner/view):
// position, a track and the reports, when the view covers the request;
// each builds exactly the answer the ClickHouse path builds from the same
// data (same JSON, order, pages, counts and cursors:
// TestViewMatchesClickHouse compares the two). ok false: ask ClickHouse.

// viewResult labels minecart_owner_view_requests_total.
const (
	viewHit      = "hit"      // answered from the view
	viewMiss     = "miss"     // outside the view (range, vehicle, dropped day): ClickHouse answered
	viewFallback = "fallback" // the view has not caught up: ClickHouse answered
)

func (h *handler) viewCount(endpoint, result string) {
	if h.viewReq != nil {
		h.viewReq.WithLabelValues(endpoint, result).Inc()
	}
}

func (h *handler) viewStatus(endpoint string, st view.Status) bool {
	switch st {
	case view.Covered:
		return true
	case view.NotCaught:
		h.viewCount(endpoint, viewFallback)
	default:
		h.viewCount(endpoint, viewMiss)
	}
	return false
}

func (h *handler) viewPosition(vin string) (Position, bool) {
	v := h.cfg.View
	if !v.Caught() {
		h.viewCount("position", viewFallback)
		return Position{}, false
	}
	x, ok := v.Position(vin)
	if !ok {
		h.viewCount("position", viewMiss)
		return Position{}, false
	}
	h.viewCount("position", viewHit)
	p := Position{VehicleID: vin, Time: time.UnixMilli(x.TimeMs).UTC(), Lat: float64(x.LatE6) / 1e6, Lon: float64(x.LonE6) / 1e6,
		SpeedKmh: x.SpeedKmh, HeadingDeg: x.HeadingDeg, OdometerKm: float64(x.OdometerM) / 1000, EngineOn: x.EngineOn}
	if x.HasHDOP {
		hd := x.HDOP
		p.HDOP = &hd
	}
	p.AgeS = h.cfg.Now().Sub(p.Time).Seconds()
	return p, true
}

var pointPool = sync.Pool{New: func() any { s := make([]view.Point, 0, 4096); return &s }}

func trackPoint(p view.Point) TrackPoint {
	return TrackPoint{Time: time.UnixMilli(p.TimeMs).UTC(), Lat: float64(p.LatE6) / 1e6, Lon: float64(p.LonE6) / 1e6,
		SpeedKmh: p.SpeedKmh, HeadingDeg: p.HeadingDeg}
}

// viewTrack answers /track from the view: cur and more as decoded from
// the request, out the empty answer.
func (h *handler) viewTrack(vin string, from, to time.Time, maxPoints, limit int, key string, cur cursor, more bool, out Track) (Track, bool) {
	if !h.cfg.View.Caught() {
		h.viewCount("track", viewFallback)
		return out, false
	}
	buf := pointPool.Get().(*[]view.Point)
	defer func() { *buf = (*buf)[:0]; pointPool.Put(buf) }()
	pts, devs, known, st := h.cfg.View.Track((*buf)[:0], vin, from.UnixMilli(), to.UnixMilli(), h.cfg.Now())
	*buf = pts
	if !h.viewStatus("track", st) {
		return out, false
	}
	n := uint64(len(pts))
	if !more {
		if n == 0 {
			if !known {
				// Maybe older telemetry: ClickHouse says 404 or empty.
				h.viewCount("track", viewMiss)
				return out, false
			}
			h.viewCount("track", viewHit)
			return out, true
		}
		cur = cursor{Query: key, Mode: "raw", TimeMs: -1, Bucket: -1, Total: n}
		if n <= uint64(maxPoints) {
			out.InRange = n
			h.viewCount("track", viewHit)
			return rawPage(pts, devs, cur, limit, out), true
		}
		cur.Mode = "ds"
	}
	h.viewCount("track", viewHit)
	out.InRange = cur.Total
	if cur.Mode == "raw" {
		// The points after the cursor's (time, device, seq).
		i := 0
		for i < len(pts) {
			p := pts[i]
			if p.TimeMs > cur.TimeMs || p.TimeMs == cur.TimeMs && (devs[p.Dev] > cur.Device || devs[p.Dev] == cur.Device && p.Seq > cur.Seq) {
				break
			}
			i++
		}
		return rawPage(pts[i:], devs, cur, limit, out), true
	}
	width := (to.Sub(from).Milliseconds() + int64(maxPoints) - 2) / int64(maxPoints-1)
	out.Downsampled, out.BucketMs = true, width
	return sampledPage(pts, from.UnixMilli(), width, cur, limit, out), true
}

// rawPage is rawTrack's page: up to limit points, and a cursor after the
// last when more follow.
func rawPage(pts []view.Point, devs []string, cur cursor, limit int, out Track) Track {
	k := min(len(pts), limit)
	out.Points = make([]TrackPoint, k)
	for i, p := range pts[:k] {
		out.Points[i] = trackPoint(p)
	}
	if len(pts) > limit {
		last := pts[limit-1]
		cur.TimeMs, cur.Device, cur.Seq = last.TimeMs, devs[last.Dev], last.Seq
		out.NextCursor = cur.encode()
	}
	return out
}

// sampledPage is sampledTrack's page: each bucket of width ms after the
// cursor's gives its first point (the first by (time, device, seq) of its
// earliest time), the last page also the range's last point.
func sampledPage(pts []view.Point, from, width int64, cur cursor, limit int, out Track) Track {
	start := from + (cur.Bucket+1)*width
	var last TrackPoint
	for i := 0; i < len(pts); {
		if pts[i].TimeMs < start {
			i++
			continue
		}
		b := (pts[i].TimeMs - from) / width
		j := i
		for j+1 < len(pts) && (pts[j+1].TimeMs-from)/width == b {
			j++
		}
		if len(out.Points) == limit {
			out.NextCursor = cur.encode()
			break
		}
		out.Points = append(out.Points, trackPoint(pts[i]))
		// argMax(x, time): the last point of the bucket's latest time.
		last = trackPoint(pts[j])
		cur.Bucket = b
		i = j + 1
	}
	if out.NextCursor == "" && len(out.Points) > 0 && !last.Time.Equal(out.Points[len(out.Points)-1].Time) {
		out.Points = append(out.Points, last)
	}
	return out
}

var scorePool = sync.Pool{New: func() any { s := make([]view.Score, 0, 64); return &s }}

// viewReports answers /reports from the view: start is the first date of
// this page, out the empty answer.
func (h *handler) viewReports(vin string, start, to time.Time, limit int, key string, more bool, out Reports) (Reports, bool) {
	if !h.cfg.View.Caught() {
		h.viewCount("reports", viewFallback)
		return out, false
	}
	buf := scorePool.Get().(*[]view.Score)
	defer func() { *buf = (*buf)[:0]; scorePool.Put(buf) }()
	sc, known, st := h.cfg.View.Scores((*buf)[:0], vin, view.Day(start.UnixMilli()), view.Day(to.UnixMilli()), h.cfg.Now())
	*buf = sc
	if !h.viewStatus("reports", st) {
		return out, false
	}
	if len(sc) == 0 && !more && !known {
		h.viewCount("reports", viewMiss)
		return out, false
	}
	h.viewCount("reports", viewHit)
	k := min(len(sc), limit)
	out.Reports = make([]Report, k)
	for i, s := range sc[:k] {
		out.Reports[i] = report(s)
	}
	if len(sc) > limit {
		out.NextCursor = cursor{Query: key, Date: out.Reports[limit-1].Date}.encode()
	}
	return out, true
}

func report(s view.Score) Report {
	x := Report{Date: time.UnixMilli(int64(s.Date) * 24 * 3600 * 1000).UTC().Format(time.DateOnly), ScoreID: s.ID, TZ: s.TZ,
		WindowStart: time.UnixMilli(s.WindowStartMs).UTC(), WindowEnd: time.UnixMilli(s.WindowEndMs).UTC(), ConfigVersion: s.ConfigVersion,
		Score: s.Score, Points: s.Points, DistanceKm: s.DistanceKm, GPSKm: s.GPSKm, OdometerKm: s.OdometerKm, DrivingS: s.DrivingS,
		HarshBrake: s.HarshBrake, HarshAccel: s.HarshAccel, HarshCorner: s.HarshCorner, SpeedingS: s.SpeedingS, NightS: s.NightS,
		FatigueEvents: s.FatigueEvents, Events: s.Events, GPSJumps: s.GPSJumps, HDOPRejected: s.HDOPRejected,
		OdometerRollbacks: s.OdometerRollbacks, Flags: s.Flags, FlagReasons: s.FlagReasons,
		Revision: s.Revision, LateAdded: s.LateAdded, RevisionReason: RevisionReason(s.Revision, s.LateAdded, s.Points, s.ConfigVersion, s.Flags)}
	if s.HasLateEvents {
		l := s.LateEvents
		x.LateEvents = &l
	}
	if x.Flags == nil {
		x.Flags = []string{}
	}
	if x.FlagReasons == nil {
		x.FlagReasons = []string{}
	}
	return x
}
