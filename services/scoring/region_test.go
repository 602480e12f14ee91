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
