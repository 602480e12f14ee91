package prom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/pipelines/prom"
)

// TestShareAndConflict: two components declaring the same series on one
// registry share it; a conflicting description is reported by Err; a nil
// registry registers nothing.
func TestShareAndConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prom.NewMetrics(reg).CounterVec("x_total", "X.", "kind")
	b := prom.NewMetrics(reg).CounterVec("x_total", "X.", "kind")
	a.WithLabelValues("k").Inc()
	b.WithLabelValues("k").Inc()
	if got := testutil.ToFloat64(a.WithLabelValues("k")); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	m := prom.NewMetrics(reg)
	m.Gauge("x_total", "Other help.")
	if m.Err() == nil {
		t.Fatal("a conflicting registration was not reported")
	}
	if err := prom.NewMetrics(nil).Err(); err != nil {
		t.Fatal(err)
	}
	h := prom.NewMetrics(nil).Histogram("h_seconds", "H.", prometheus.LinearBuckets(0, 1, 3))
	h.Observe(1)
}
