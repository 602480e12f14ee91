package kafka

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines/prom"
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
	repaired    *prometheus.CounterVec   // stage, topic
	sinkRows    *prometheus.CounterVec   // stage
	sinkWrites  *prometheus.CounterVec   // stage, result
	sinkSeconds *prometheus.HistogramVec // stage
}

// newMetrics registers the runtime's series on reg. Their descriptions are
// fixed here, so a registration conflict is a programming error; the
// runtime then keeps working with unregistered collectors.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := prom.NewMetrics(reg)
	exp := prometheus.ExponentialBuckets
	return &metrics{
		recordsIn:   m.CounterVec("minecart_pipeline_records_in_total", "Records consumed and processed by a stage.", "stage"),
		recordsOut:  m.CounterVec("minecart_pipeline_records_out_total", "Records a stage produced (dead letters excluded).", "stage"),
		dead:        m.CounterVec("minecart_pipeline_records_dead_total", "Records a stage sent to the dead-letter topic, by reason code.", "stage", "code"),
		txns:        m.CounterVec("minecart_pipeline_transactions_total", "Transactions ended, by result (committed, aborted).", "stage", "result"),
		retries:     m.CounterVec("minecart_pipeline_retries_total", "Retries of records that failed with a transient error.", "stage"),
		lag:         m.GaugeVec("minecart_pipeline_consumer_lag", "Records between a stage's position and the partition's end.", "stage", "topic", "partition"),
		batch:       m.HistogramVec("minecart_pipeline_batch_seconds", "Time from a batch's poll to its commit.", exp(0.001, 2, 14), "stage"),
		age:         m.HistogramVec("minecart_pipeline_commit_age_seconds", "Age (from its Kafka timestamp) of a batch's oldest record when the batch commits: end-to-end delay.", exp(0.005, 2, 16), "stage"),
		restore:     m.HistogramVec("minecart_pipeline_restore_seconds", "Time to replay a task's changelog partition.", exp(0.01, 2, 14), "stage"),
		repaired:    m.CounterVec("minecart_stage_offsets_repaired_total", "Input partitions whose group offset was found behind the stage's applied offset (its changelog) after a restore, and moved to it.", "stage", "topic"),
		sinkRows:    m.CounterVec("minecart_sink_rows_total", "Records a sink wrote successfully.", "stage"),
		sinkWrites:  m.CounterVec("minecart_sink_writes_total", "Sink Write calls, by result (ok, error).", "stage", "result"),
		sinkSeconds: m.HistogramVec("minecart_sink_write_seconds", "Duration of successful sink writes.", exp(0.001, 2, 14), "stage"),
	}
}
