package scoring

import "fmt"

// Region is the coarse region code of a position given in 1e-7 degrees
// (as the day keeps its fixes): its 1 x 1 degree cell, the hemisphere
// letter and the floor of the absolute latitude in two digits, then the
// same for the longitude in three: "N31E121" for latitude in [31, 32) and
// longitude in [121, 122); "S34W071" south and west. The 90th parallel and
// the 180th meridian fall in the cells below them; "" outside the earth.
// It names an area of about 100 km, never a position: DailyScore.region,
// what partner campaigns see (docs/campaigns.md).
func Region(latE7, lonE7 int32) string {
	const deg = 10_000_000
	if latE7 < -90*deg || latE7 > 90*deg || lonE7 < -180*deg || lonE7 > 180*deg {
		return ""
	}
	floor := func(v int32) int {
		q := int(v) / deg
		if int(v)%deg < 0 {
			q--
		}
		return q
	}
	la, lo := min(floor(latE7), 89), min(floor(lonE7), 179)
	ns, ew := 'N', 'E'
	if la < 0 {
		ns, la = 'S', -la
	}
	if lo < 0 {
		ew, lo = 'W', -lo
	}
	return fmt.Sprintf("%c%02d%c%03d", ns, la, ew, lo)
}
