package owner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/services/auth"
)

// FleetScore is one vehicle's score of a day in /v1/fleet/scores.
type FleetScore struct {
	VehicleID  string   `json:"vehicle_id"`
	Score      float32  `json:"score"`
	Points     int64    `json:"points"`
	DistanceKm float64  `json:"distance_km"`
	Flags      []string `json:"flags"`
}

// FleetDay is the answer of GET /v1/fleet/scores?date=&limit=: one day's
// scores of every vehicle (the latest revision of each), most points
// first. It is an operator's query: owners get 403.
type FleetDay struct {
	Date   string       `json:"date"`
	Scores []FleetScore `json:"scores"`
}

// Limits of /v1/fleet/scores.
const (
	DefaultFleetScores = 100
	MaxFleetScores     = 10000
)

func (h *handler) fleetScores(w http.ResponseWriter, r *http.Request) {
	h.answer(w, r, "fleet_scores", func() int {
		return h.respond(w, r, "fleet/scores", func(ctx context.Context) (any, error) {
			day, err := parseDate(r, "date", h.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1))
			if err != nil {
				return nil, err
			}
			limit, err := intParam(r, "limit", DefaultFleetScores, 1, MaxFleetScores)
			if err != nil {
				return nil, err
			}
			return h.queryFleet(ctx, day, limit)
		})
	})
}

func (h *handler) queryFleet(ctx context.Context, day time.Time, limit int) (FleetDay, error) {
	out := FleetDay{Date: day.Format(time.DateOnly), Scores: []FleetScore{}}
	rows, err := h.cfg.Conn.Query(bind(ctx, clickhouse.Parameters{"d": out.Date, "lim": strconv.Itoa(limit)}), `
		SELECT vehicle_id, score, points, distance_km, flags FROM (
			SELECT vehicle_id, score, points, distance_km, flags
			FROM daily_scores
			WHERE date = {d:Date}
			ORDER BY vehicle_id, revision DESC, src_offset DESC
			LIMIT 1 BY vehicle_id)
		ORDER BY points DESC, vehicle_id
		LIMIT {lim:UInt32}`)
	if err != nil {
		return out, fmt.Errorf("fleet scores: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s FleetScore
		if err := rows.Scan(&s.VehicleID, &s.Score, &s.Points, &s.DistanceKm, &s.Flags); err != nil {
			return out, fmt.Errorf("fleet scores: %w", err)
		}
		out.Scores = append(out.Scores, s)
	}
	return out, rows.Err()
}

// operators is the role of the all-vehicles queries.
var operators = auth.Roles{auth.RoleOperator}
