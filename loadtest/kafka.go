package loadtest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// KafkaConfig configures a KafkaProducer. Zero fields take the defaults shown.
type KafkaConfig struct {
	Brokers []string
	// User and Password, if set, authenticate with SASL/SCRAM-SHA-512 (the
	// embedded broker of minecart run requires it).
	User, Password string
	// Topic (default pipelines.TopicTelemetryRaw).
	Topic string
	// Serde frames the values (default schemas.SingleObject(), as the
	// gateway writes them).
	Serde *schemas.Serde
	// BatchSize is the kafka-go Writer's records per produce batch and
	// partition (default 1,000).
	BatchSize int
	// BatchTimeout is how long a partial batch waits for more records
	// (default 5 ms).
	BatchTimeout time.Duration
	// CallSize is the most messages handed to one WriteMessages call
	// (default 10,000).
	CallSize int
	// Now is the clock for rates and latencies (default time.Now).
	Now func() time.Time
	// Progress, if set, is called from Send at most every ProgressEvery
	// (default 1 s).
	Progress      func(Report)
	ProgressEvery time.Duration
}

func (c KafkaConfig) withDefaults() KafkaConfig {
	if c.Topic == "" {
		c.Topic = pipelines.TopicTelemetryRaw
	}
	if c.Serde == nil {
		c.Serde = schemas.SingleObject()
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 5 * time.Millisecond
	}
	if c.CallSize == 0 {
		c.CallSize = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	return c
}

// Validate reports the first invalid field, after defaults.
func (c KafkaConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka producer: Brokers is empty")
	case c.BatchSize < 1 || c.CallSize < 1:
		return errors.New("kafka producer: BatchSize and CallSize must be >= 1")
	case c.BatchTimeout < 0:
		return errors.New("kafka producer: negative BatchTimeout")
	}
	return nil
}

// KafkaProducer writes telemetry events straight to the raw topic as the
// gateway would (key = vehicle id, header "device", value = framed Avro
// minecart.telemetry.Event), with segmentio/kafka-go: a second Kafka
// client, independent of the pipeline's franz-go, proving the topic
// contract holds for any producer.
//
// The Writer is tuned as /work/shared/kafka.md found necessary: untuned, a
// WriteMessages call with one message waits out kafka-go's default 1 s
// BatchTimeout (about one message per second). Here each call hands the
// Writer up to CallSize messages, BatchSize lets a produce request carry
// 1,000 records per partition, and a BatchTimeout of a few milliseconds
// bounds how long a partition's partial batch waits at the end of a call.
// Calls are synchronous (not Async) so every error is seen and counted and
// the ack latency is measured; many messages per call keeps all
// partitions' batches in flight at once. The Murmur2Balancer places keys
// on the partitions the Java client and franz-go would choose, so a
// vehicle's events share a partition with those the gateway produced.
type KafkaProducer struct {
	cfg     KafkaConfig
	w       *kafka.Writer
	codec   *wire.Codec
	msgs    []kafka.Message
	buf     []byte
	start   time.Time
	lastP   time.Time
	lat     latencies
	rep     Report
	retries int64
}

// NewKafkaProducer prepares the writer; kafka-go connects on first write.
func NewKafkaProducer(cfg KafkaConfig) (*KafkaProducer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	codec, err := wire.NewCodec(cfg.Serde)
	if err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		BatchSize:    cfg.BatchSize,
		BatchBytes:   1 << 20, // Kafka's default message.max.bytes
		BatchTimeout: cfg.BatchTimeout,
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  10,
	}
	if cfg.User != "" {
		mech, err := scram.Mechanism(scram.SHA512, cfg.User, cfg.Password)
		if err != nil {
			return nil, fmt.Errorf("kafka producer: %w", err)
		}
		w.Transport = &kafka.Transport{SASL: mech}
	}
	now := cfg.Now()
	return &KafkaProducer{cfg: cfg, w: w, codec: codec, start: now, lastP: now, rep: Report{Rejects: map[string]int64{}}}, nil
}

// Send produces events, CallSize messages per WriteMessages call.
func (p *KafkaProducer) Send(ctx context.Context, events []telemetry.Event) error {
	for lo := 0; lo < len(events); lo += p.cfg.CallSize {
		part := events[lo:min(lo+p.cfg.CallSize, len(events))]
		p.msgs = p.msgs[:0]
		// one buffer for the call's values: kafka-go keeps the slices until
		// WriteMessages returns, so it is reused only after.
		p.buf = p.buf[:0]
		ends := make([]int, len(part))
		for i := range part {
			p.buf = p.codec.AppendEvent(p.buf, &part[i])
			ends[i] = len(p.buf)
		}
		off := 0
		for i := range part {
			p.msgs = append(p.msgs, kafka.Message{
				Key:     []byte(part[i].VehicleID),
				Value:   p.buf[off:ends[i]:ends[i]],
				Headers: []kafka.Header{{Key: "device", Value: []byte(part[i].DeviceID)}},
			})
			off = ends[i]
		}
		start := p.cfg.Now()
		err := p.w.WriteMessages(ctx, p.msgs...)
		if err != nil {
			var we kafka.WriteErrors
			if errors.As(err, &we) {
				failed := int64(we.Count())
				p.rep.Failed += failed
				p.rep.Events += int64(len(part)) - failed
				p.rep.Rejects["kafka"] += failed
			} else {
				p.rep.Failed += int64(len(part))
			}
			return fmt.Errorf("kafka producer: %w", err)
		}
		p.lat.add(p.cfg.Now().Sub(start))
		p.rep.Events += int64(len(part))
		p.rep.Batches++
		p.rep.Bytes += int64(len(p.buf))
	}
	if p.cfg.Progress != nil {
		if now := p.cfg.Now(); now.Sub(p.lastP) >= p.cfg.ProgressEvery {
			p.lastP = now
			p.cfg.Progress(p.Report())
		}
	}
	return nil
}

// SendChunks produces every chunk of a simulation, then closes the
// producer and returns its report.
func (p *KafkaProducer) SendChunks(ctx context.Context, chunks iter.Seq[fleet.Chunk]) (Report, error) {
	var err error
	for c := range chunks {
		if err = p.Send(ctx, c.Events); err != nil {
			break
		}
	}
	r, cerr := p.Close()
	return r, errors.Join(err, cerr)
}

// Report returns the figures so far. Batches counts WriteMessages calls,
// and P50/P99 are their latency. Like Send, call it from one goroutine.
func (p *KafkaProducer) Report() Report {
	r := p.rep
	r.Rejects = make(map[string]int64, len(p.rep.Rejects))
	for k, v := range p.rep.Rejects {
		r.Rejects[k] = v
	}
	r.Elapsed = p.cfg.Now().Sub(p.start)
	if r.Elapsed > 0 {
		r.EventsPerSec = float64(r.Events) / r.Elapsed.Seconds()
	}
	r.P50, r.P99 = p.lat.quantile(0.5), p.lat.quantile(0.99)
	p.retries += p.w.Stats().Retries // kafka-go's counters restart at each Stats call
	r.Retries = p.retries
	return r
}

// Close flushes and closes the writer and returns the final report.
func (p *KafkaProducer) Close() (Report, error) {
	err := p.w.Close()
	r := p.Report()
	if err != nil {
		return r, fmt.Errorf("kafka producer: close: %w", err)
	}
	return r, nil
}
