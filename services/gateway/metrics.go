package gateway

import (
	"errors"
	"fmt"

	"github.com/minecart/minecart/pipelines"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	batches  *prometheus.CounterVec // format
	events   prometheus.Counter
	bytes    prometheus.Counter
	rejects  *prometheus.CounterVec // reason
	produce  prometheus.Histogram
	latency  prometheus.Histogram
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_gateway_batches_total", Help: "Batches accepted (202), by body format.",
		}, []string{"format"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minecart_gateway_events_total", Help: "Events accepted and acknowledged by Kafka.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minecart_gateway_bytes_total", Help: "Body bytes (as sent) of accepted batches.",
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_gateway_rejects_total", Help: "Requests refused, by reason (docs/ingest.md).",
		}, []string{"reason"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "minecart_gateway_produce_seconds", Help: "Time for Kafka to acknowledge a batch's records.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "minecart_gateway_request_seconds", Help: "Time from request to 202.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "minecart_gateway_inflight_bytes", Help: "Bytes held by requests being handled.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	// A gateway rebuilt in the same process shares the series.
	var errs [7]error
	m.batches, errs[0] = pipelines.Register(reg, m.batches)
	m.events, errs[1] = pipelines.Register(reg, m.events)
	m.bytes, errs[2] = pipelines.Register(reg, m.bytes)
	m.rejects, errs[3] = pipelines.Register(reg, m.rejects)
	m.produce, errs[4] = pipelines.Register(reg, m.produce)
	m.latency, errs[5] = pipelines.Register(reg, m.latency)
	m.inflight, errs[6] = pipelines.Register(reg, m.inflight)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	return m, nil
}
