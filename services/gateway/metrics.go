package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines/prom"
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
	m := prom.NewMetrics(reg)
	return &metrics{
		batches:  m.CounterVec("minecart_gateway_batches_total", "Batches accepted (202), by body format.", "format"),
		events:   m.Counter("minecart_gateway_events_total", "Events accepted and acknowledged by Kafka."),
		bytes:    m.Counter("minecart_gateway_bytes_total", "Body bytes (as sent) of accepted batches."),
		rejects:  m.CounterVec("minecart_gateway_rejects_total", "Requests refused, by reason (docs/ingest.md).", "reason"),
		produce:  m.Histogram("minecart_gateway_produce_seconds", "Time for Kafka to acknowledge a batch's records.", prometheus.ExponentialBuckets(0.0005, 2, 16)),
		latency:  m.Histogram("minecart_gateway_request_seconds", "Time from request to 202.", prometheus.ExponentialBuckets(0.0005, 2, 16)),
		inflight: m.Gauge("minecart_gateway_inflight_bytes", "Bytes held by requests being handled."),
	}, m.Err()
}
