package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
)

// Bounds of GET /v1/console/deadletters.
const (
	// DeadLetterWindow is how many of the newest records of each
	// dead-letter partition are read.
	DeadLetterWindow = 2000
	// DeadLetterSamples is how many of a reason's newest records are kept.
	DeadLetterSamples = 3
	// DeadLetterValueBytes is how much of a rejected record's value a
	// sample carries (base64); ValueBytes gives the whole length.
	DeadLetterValueBytes = 512
)

// DeadLetterSample is one dead-lettered record: where it came from, why it
// was refused and the start of its payload (operators only).
type DeadLetterSample struct {
	Partition       int32     `json:"partition"` // of the dead-letter topic
	Offset          int64     `json:"offset"`
	Time            time.Time `json:"time"`
	Error           string    `json:"error"`
	SourceTopic     string    `json:"source_topic"`
	SourcePartition int32     `json:"source_partition"`
	SourceOffset    int64     `json:"source_offset"`
	Key             string    `json:"key"`         // base64
	Value           string    `json:"value"`       // base64 of the first DeadLetterValueBytes bytes
	ValueBytes      int       `json:"value_bytes"` // the whole value's length
}

// DeadLetterReason groups a stage's dead letters of one reason code.
type DeadLetterReason struct {
	Stage string `json:"stage"`
	Code  string `json:"code"`
	// Seen counts the reason's records among those read (the window);
	// the pipeline's counters (minecart_pipeline_records_dead_total) count
	// all of them since the process started.
	Seen    int                `json:"seen"`
	Samples []DeadLetterSample `json:"samples"` // newest first
}

// DeadLetters is the answer of GET /v1/console/deadletters.
type DeadLetters struct {
	Topic   string             `json:"topic"`
	Read    int                `json:"read"`   // records read
	Window  int                `json:"window"` // per partition
	Reasons []DeadLetterReason `json:"reasons"`
}

// TopicReader reads a topic's records by offset (kafka.Reader).
type TopicReader interface {
	Ends(ctx context.Context, topic string) (map[int32]int64, error)
	Read(ctx context.Context, topic string, p int32, from, end int64, fn func(pipelines.Record) error) error
	Close()
}

// DeadLetterTail is Config.DeadLetters over a topic reader (open makes
// one per call; it is closed after): it reads the
// last DeadLetterWindow records of each partition of the dead-letter topic
// (pipelines.TopicDeadLetter; schemas.DeadLetter records framed by serde)
// and keeps the newest DeadLetterSamples of each stage and reason. A
// record that does not decode is grouped under stage "?" and code
// "undecodable".
func DeadLetterTail(open func() (TopicReader, error), serde *schemas.Serde) func(ctx context.Context) (DeadLetters, error) {
	topic := pipelines.TopicDeadLetter
	return func(ctx context.Context) (DeadLetters, error) {
		out := DeadLetters{Topic: topic, Window: DeadLetterWindow, Reasons: []DeadLetterReason{}}
		rd, err := open()
		if err != nil {
			return out, fmt.Errorf("dead letters: %w", err)
		}
		defer rd.Close()
		ends, err := rd.Ends(ctx, topic)
		if err != nil {
			return out, fmt.Errorf("dead letters: ends: %w", err)
		}
		groups := map[[2]string]*DeadLetterReason{}
		for p, end := range ends {
			from := max(end-DeadLetterWindow, 0)
			err := rd.Read(ctx, topic, p, from, end, func(r pipelines.Record) error {
				out.Read++
				var d avro.DeadLetter
				s := DeadLetterSample{Partition: r.Partition, Offset: r.Offset}
				if err := serde.Unmarshal(r.Value, &d); err != nil {
					d.Stage, d.ReasonCode, d.Error = "?", "undecodable", err.Error()
				}
				s.Time, s.Error = d.Time.UTC(), d.Error
				s.SourceTopic, s.SourcePartition, s.SourceOffset = d.SourceTopic, d.SourcePartition, d.SourceOffset
				s.Key, s.ValueBytes = base64.StdEncoding.EncodeToString(d.Key), len(d.Value)
				s.Value = base64.StdEncoding.EncodeToString(d.Value[:min(len(d.Value), DeadLetterValueBytes)])
				k := [2]string{d.Stage, d.ReasonCode}
				g := groups[k]
				if g == nil {
					g = &DeadLetterReason{Stage: d.Stage, Code: d.ReasonCode}
					groups[k] = g
				}
				g.Seen++
				g.Samples = append(g.Samples, s)
				if len(g.Samples) > DeadLetterSamples { // keep the newest (offsets ascend within a partition)
					sort.Slice(g.Samples, func(i, j int) bool { return newer(g.Samples[i], g.Samples[j]) })
					g.Samples = g.Samples[:DeadLetterSamples]
				}
				return nil
			})
			if err != nil {
				return out, fmt.Errorf("dead letters: partition %d: %w", p, err)
			}
		}
		for _, g := range groups {
			sort.Slice(g.Samples, func(i, j int) bool { return newer(g.Samples[i], g.Samples[j]) })
			out.Reasons = append(out.Reasons, *g)
		}
		sort.Slice(out.Reasons, func(i, j int) bool {
			a, b := out.Reasons[i], out.Reasons[j]
			if a.Seen != b.Seen {
				return a.Seen > b.Seen
			}
			return a.Stage+"/"+a.Code < b.Stage+"/"+b.Code
		})
		return out, nil
	}
}

// newer orders samples newest first: by dead-letter time, then position.
func newer(a, b DeadLetterSample) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset > b.Offset
}

func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request) {
	if h.cfg.DeadLetters == nil {
		writeJSON(w, DeadLetters{Topic: pipelines.TopicDeadLetter, Window: DeadLetterWindow, Reasons: []DeadLetterReason{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out, err := h.cfg.DeadLetters(ctx)
	if err != nil {
		h.cfg.Logger.Error("web: dead letters", "err", err)
		auth.WriteError(w, http.StatusServiceUnavailable, "dead letters out of reach")
		return
	}
	writeJSON(w, out)
}
