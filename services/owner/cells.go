package owner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Cell is one coarse cell of GET /v1/fleet/cells: the square of CellDeg
// degrees whose south-west corner is (Lat, Lon), how many vehicles
// reported from it and how many events.
type Cell struct {
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Vehicles uint64  `json:"vehicles"`
	Events   uint64  `json:"events"`
}

// Cells is the answer of GET /v1/fleet/cells?date=YYYY-MM-DD (operators
// only): the fleet's density over one UTC day, densest cells first. No
// vehicle id is in the answer.
type Cells struct {
	Date    string  `json:"date"`
	CellDeg float64 `json:"cell_deg"`
	Cells   []Cell  `json:"cells"`
}

// Limits of /v1/fleet/cells.
const (
	CellDeg  = 0.02 // about 2 km
	MaxCells = 5000
)

func (h *handler) fleetCells(w http.ResponseWriter, r *http.Request) {
	h.answer(w, r, "fleet_cells", func() int {
		return h.respond(w, r, "fleet/cells", func(ctx context.Context) (any, error) {
			day, err := parseDate(r, "date", h.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1))
			if err != nil {
				return nil, err
			}
			return h.queryCells(ctx, day)
		})
	})
}

func (h *handler) queryCells(ctx context.Context, day time.Time) (Cells, error) {
	out := Cells{Date: day.Format(time.DateOnly), CellDeg: CellDeg, Cells: []Cell{}}
	p := clickhouse.Parameters{"from": ms(day), "to": ms(day.Add(24 * time.Hour)), "e6": strconv.Itoa(int(CellDeg * 1e6)),
		"lim": strconv.Itoa(MaxCells)}
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT toInt32(floor(lat_e6 / {e6:Float64})) AS la, toInt32(floor(lon_e6 / {e6:Float64})) AS lo, uniqExact(vehicle_id), count()
		FROM telemetry
		WHERE time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
		GROUP BY la, lo
		ORDER BY count() DESC, la, lo
		LIMIT {lim:UInt32}`)
	if err != nil {
		return out, fmt.Errorf("fleet cells: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var la, lo int32
		var c Cell
		if err := rows.Scan(&la, &lo, &c.Vehicles, &c.Events); err != nil {
			return out, fmt.Errorf("fleet cells: %w", err)
		}
		c.Lat, c.Lon = float64(la)*CellDeg, float64(lo)*CellDeg
		out.Cells = append(out.Cells, c)
	}
	return out, rows.Err()
}
