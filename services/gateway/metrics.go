package gateway

import (
	"errors"

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
	var errs []error
	reuse := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector // a gateway rebuilt in the same process
			}
			errs = append(errs, err)
		}
		return c
	}
	m.batches, _ = reuse(m.batches).(*prometheus.CounterVec)
	m.events, _ = reuse(m.events).(prometheus.Counter)
	m.bytes, _ = reuse(m.bytes).(prometheus.Counter)
	m.rejects, _ = reuse(m.rejects).(*prometheus.CounterVec)
	m.produce, _ = reuse(m.produce).(prometheus.Histogram)
	m.latency, _ = reuse(m.latency).(prometheus.Histogram)
	m.inflight, _ = reuse(m.inflight).(prometheus.Gauge)
	if m.batches == nil || m.events == nil || m.bytes == nil || m.rejects == nil || m.produce == nil || m.latency == nil || m.inflight == nil {
		errs = append(errs, errors.New("gateway metrics: a collector of another type is registered under a gateway metric name"))
	}
	return m, errors.Join(errs...)
}
