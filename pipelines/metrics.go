package pipelines

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus series. Label sets stay small: the
// stage, a result, a reject code (codes are chosen by stage code, a short
// fixed list), and topic/partition for lag only.
type metrics struct {
	recordsIn   *prometheus.CounterVec   // stage
	recordsOut  *prometheus.CounterVec   // stage
	dead        *prometheus.CounterVec   // stage, code
	txns        *prometheus.CounterVec   // stage, result
	retries     *prometheus.CounterVec   // stage
	lag         *prometheus.GaugeVec     // stage, topic, partition
	batch       *prometheus.HistogramVec // stage
	age         *prometheus.HistogramVec // stage
	restore     *prometheus.HistogramVec // stage
	sinkRows    *prometheus.CounterVec   // stage
	sinkWrites  *prometheus.CounterVec   // stage, result
	sinkSeconds *prometheus.HistogramVec // stage
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_pipeline_records_in_total", Help: "Records consumed and processed by a stage.",
		}, []string{"stage"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_pipeline_records_out_total", Help: "Records a stage produced (dead letters excluded).",
		}, []string{"stage"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_pipeline_records_dead_total", Help: "Records a stage sent to the dead-letter topic, by reason code.",
		}, []string{"stage", "code"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_pipeline_transactions_total", Help: "Transactions ended, by result (committed, aborted).",
		}, []string{"stage", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_pipeline_retries_total", Help: "Retries of records that failed with a transient error.",
		}, []string{"stage"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "minecart_pipeline_consumer_lag", Help: "Records between a stage's position and the partition's end.",
		}, []string{"stage", "topic", "partition"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "minecart_pipeline_batch_seconds", Help: "Time from a batch's poll to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"stage"}),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "minecart_pipeline_commit_age_seconds", Help: "Age (from its Kafka timestamp) of a batch's oldest record when the batch commits: end-to-end delay.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"stage"}),
		restore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "minecart_pipeline_restore_seconds", Help: "Time to replay a task's changelog partition.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"stage"}),
		sinkRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_sink_rows_total", Help: "Records a sink wrote successfully.",
		}, []string{"stage"}),
		sinkWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minecart_sink_writes_total", Help: "Sink Write calls, by result (ok, error).",
		}, []string{"stage", "result"}),
		sinkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "minecart_sink_write_seconds", Help: "Duration of successful sink writes.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"stage"}),
	}
	if reg == nil {
		return m
	}
	m.recordsIn = register(reg, m.recordsIn)
	m.recordsOut = register(reg, m.recordsOut)
	m.dead = register(reg, m.dead)
	m.txns = register(reg, m.txns)
	m.retries = register(reg, m.retries)
	m.lag = register(reg, m.lag)
	m.batch = register(reg, m.batch)
	m.age = register(reg, m.age)
	m.restore = register(reg, m.restore)
	m.sinkRows = register(reg, m.sinkRows)
	m.sinkWrites = register(reg, m.sinkWrites)
	m.sinkSeconds = register(reg, m.sinkSeconds)
	return m
}

// Register registers c on reg, or returns the collector already registered
// there with the same description: several stages in one process (`minecart
// run`), or a component rebuilt in the same process, share the series. A
// conflicting description (same name, other labels or help) is an error.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// register is Register for the runtime's own collectors, whose descriptions
// are fixed here: a conflict would be a programming error, and the runtime
// keeps working with the unregistered collector.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, _ = Register(reg, c)
	return c
}
