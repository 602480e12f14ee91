package owner_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/minecart/minecart/services/owner"
)

// testCells: on 2026-11-20 v-1 (720 events near 52.50, 13.40) and v-3 (20
// events at 48.00, 2.00 from two devices) fill two cells, densest first;
// the day before is empty; owners may not ask.
func testCells(t *testing.T, e env) {
	var c owner.Cells
	if code := e.get(t, "/v1/fleet/cells?date=2026-11-20", &c); code != 200 {
		t.Fatalf("status %d", code)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	got := fmt.Sprint(c.Cells)
	if len(c.Cells) != 2 || c.CellDeg != owner.CellDeg ||
		!near(c.Cells[0].Lat, 52.50) || !near(c.Cells[0].Lon, 13.40) || c.Cells[0].Vehicles != 1 || c.Cells[0].Events != 720 ||
		!near(c.Cells[1].Lat, 48.00) || !near(c.Cells[1].Lon, 2.00) || c.Cells[1].Vehicles != 1 || c.Cells[1].Events != 20 {
		t.Errorf("cells of 2026-11-20: %s", got)
	}
	if code := e.get(t, "/v1/fleet/cells?date=2026-11-19", &c); code != 200 || len(c.Cells) != 0 {
		t.Errorf("cells of 2026-11-19: %d %v", code, c.Cells)
	}
	if code := e.get(t, "/v1/fleet/cells?date=x", nil); code != 400 {
		t.Errorf("bad date: %d", code)
	}
	owner1 := e
	owner1.tok = testAuth(t).owner1
	if code := owner1.get(t, "/v1/fleet/cells?date=2026-11-20", nil); code != 403 {
		t.Errorf("an owner asking for the fleet's cells: %d, want 403", code)
	}
}
