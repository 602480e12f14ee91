package scoring

import "testing"

func TestRegion(t *testing.T) {
	for _, tc := range []struct {
		lat, lon int32
		want     string
	}{
		{312304000, 1214737000, "N31E121"}, // Shanghai
		{310000000, 1210000000, "N31E121"}, // a cell's corner is in it
		{309999999, 1209999999, "N30E120"}, // the last 1e-7 degree before it is not
		{-334500000, -706600000, "S34W071"},
		{-1, -1, "S01W001"},
		{0, 0, "N00E000"},
		{900000000, 1800000000, "N89E179"},
		{900000001, 0, ""},
		{0, -1800000001, ""},
	} {
		if got := Region(tc.lat, tc.lon); got != tc.want {
			t.Errorf("Region(%d, %d) = %q, want %q", tc.lat, tc.lon, got, tc.want)
		}
	}
}

// TestResultRegion: a day's region is the cell of its first usable fix
// (the trip starts at 31.2 N 121.4 E and drives east), "" without one.
func TestResultRegion(t *testing.T) {
	r := DefaultRules()
	_, res := scoreDay(&r, newTrip("v", morning(), 1).Drive(600, 60).Evs)
	if res.Region != "N31E121" {
		t.Errorf("region %q, want N31E121", res.Region)
	}
	tr := newTrip("v", morning(), 1).Drive(60, 60)
	for i := range tr.Evs {
		tr.Evs[i].Lat, tr.Evs[i].Lon = 0, 0 // no fix at all
	}
	if _, res := scoreDay(&r, tr.Evs); res.Region != "" {
		t.Errorf("region without a fix %q", res.Region)
	}
}
