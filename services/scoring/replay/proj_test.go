package replay

import (
	"math"
	"math/rand/v2"
	"testing"
)

// projDirect is proj as first written: a cosine per call.
func projDirect(lat, lon float64) (x, y float64) {
	band := (math.Floor(lat) + 0.5) * math.Pi / 180
	return lon * 111320 * math.Cos(band), lat * 111320
}

// TestProjTable: proj with its table of band cosines gives the cosine
// expression's bits, on every band's edges and inside, out of range, and
// for NaN and infinities (cells and fingerprints are in the changelog and
// the index: a different bit would move a cell).
func TestProjTable(t *testing.T) {
	lats := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, -90, 90, 90.5, -90.5, 1e9, -1e9}
	for b := -91; b <= 91; b++ {
		f := float64(b)
		lats = append(lats, f, math.Nextafter(f, math.Inf(1)), math.Nextafter(f, math.Inf(-1)), f+0.5)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		lats = append(lats, r.Float64()*180-90)
	}
	for i, lat := range lats {
		lon := float64(i%361) - 180.25
		x, y := proj(lat, lon)
		wx, wy := projDirect(lat, lon)
		if math.Float64bits(x) != math.Float64bits(wx) || math.Float64bits(y) != math.Float64bits(wy) {
			if math.IsNaN(x) && math.IsNaN(wx) && math.Float64bits(y) == math.Float64bits(wy) {
				continue
			}
			t.Fatalf("proj(%v, %v) = %v, %v; the cosine gives %v, %v", lat, lon, x, y, wx, wy)
		}
	}
}
