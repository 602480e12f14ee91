package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Writer's own series; the runtime (kafka.RunSink)
// adds batch latency, retries and consumer lag.
type metrics struct {
	rows    *prometheus.CounterVec // by table
	skipped prometheus.Counter
	dead    *prometheus.CounterVec // by reason code
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_sink_rows_total",
			Help: "Rows inserted into ClickHouse, by table."}, []string{"table"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "minecart_sink_skipped_total",
			Help: "Records skipped because their offsets were already stored (redeliveries)."}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_sink_dead_letters_total",
			Help: "Records dead-lettered by the sink, by reason code."}, []string{"code"}),
	}
	if reg != nil {
		m.rows = register(reg, m.rows)
		m.skipped = register(reg, m.skipped)
		m.dead = register(reg, m.dead)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (several writers may share a registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
