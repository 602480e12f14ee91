// Package prom is the one way minecart registers Prometheus metrics: a
// component declares its collectors through Metrics, and several components
// of one process share a series instead of failing to register it twice. It
// is its own package so that the stage contract (pipelines), which the
// kafka-go partner example imports for topic names, links no Prometheus.
package prom

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics makes a component's Prometheus collectors and registers them on
// one registry: the one way minecart registers metrics. Several components
// of one process (`minecart run` holds every stage), or a component rebuilt
// in the same process, share a series: registering a collector already
// registered with the same description returns the existing one. A
// conflicting description (same name, other labels or help) is an error,
// reported by Err. A nil registry makes unregistered collectors.
type Metrics struct {
	reg  prometheus.Registerer
	errs []error
}

// NewMetrics returns a Metrics registering on reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics { return &Metrics{reg: reg} }

// Err reports the registrations that failed, if any.
func (m *Metrics) Err() error {
	if err := errors.Join(m.errs...); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Counter is a registered counter.
func (m *Metrics) Counter(name, help string) prometheus.Counter {
	return register(m, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec is a registered counter with labels.
func (m *Metrics) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(m, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge is a registered gauge.
func (m *Metrics) Gauge(name, help string) prometheus.Gauge {
	return register(m, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec is a registered gauge with labels.
func (m *Metrics) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(m, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// Histogram is a registered histogram.
func (m *Metrics) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(m, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec is a registered histogram with labels.
func (m *Metrics) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(m, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}

func register[C prometheus.Collector](m *Metrics, c C) C {
	if m.reg == nil {
		return c
	}
	if err := m.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		m.errs = append(m.errs, err)
	}
	return c
}
