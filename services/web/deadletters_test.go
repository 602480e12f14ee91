package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/web"
)

// TestDeadLetterTail reads a real dead-letter topic (the embedded broker):
// five ingest/decode records, one scoring/late_event and one that is no
// DeadLetter at all. Each reason keeps its newest three samples, newest
// first, with the source position and a value cut to DeadLetterValueBytes.
func TestDeadLetterTail(t *testing.T) {
	brokers := kafkatest.Broker(t)
	serde := schemas.SingleObject()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	var recs []kafka.Output
	add := func(stage, code string, i int, value []byte) {
		b, err := serde.Marshal(&avro.DeadLetter{Stage: stage, ReasonCode: code, Error: fmt.Sprintf("%s %d", code, i),
			SourceTopic: pipelines.TopicTelemetryRaw, SourcePartition: 2, SourceOffset: int64(100 + i), Key: []byte("k"),
			Value: value, Time: t0.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicDeadLetter, Key: []byte("k"), Value: b, ToPartition: true})
	}
	for i := range 5 {
		add("ingest", "decode", i, bytes.Repeat([]byte{byte(i)}, 1000))
	}
	add("scoring", "late_event", 5, []byte("late"))
	recs = append(recs, kafka.Output{Topic: pipelines.TopicDeadLetter, Value: []byte("not avro"), ToPartition: true})
	kafkatest.Produce(t, brokers, recs...)

	tail := web.DeadLetterTail(func() (web.TopicReader, error) { return kafka.NewReader(kafkatest.Config(brokers)) }, serde)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Read != 7 || len(got.Reasons) != 3 {
		t.Fatalf("read %d records, %d reasons %+v; want 7 and 3", got.Read, len(got.Reasons), got.Reasons)
	}
	d := got.Reasons[0]
	if d.Stage != "ingest" || d.Code != "decode" || d.Seen != 5 || len(d.Samples) != web.DeadLetterSamples {
		t.Fatalf("first reason %+v, want ingest/decode seen 5 with 3 samples", d)
	}
	for i, s := range d.Samples {
		n := 4 - i // newest first: 4, 3, 2
		v, _ := base64.StdEncoding.DecodeString(s.Value)
		if s.Error != fmt.Sprintf("decode %d", n) || s.SourceOffset != int64(100+n) || s.SourcePartition != 2 ||
			s.ValueBytes != 1000 || len(v) != web.DeadLetterValueBytes || v[0] != byte(n) || !s.Time.Equal(t0.Add(time.Duration(n)*time.Second)) {
			t.Errorf("sample %d: %+v", i, s)
		}
	}
	want := map[string]int{"scoring/late_event": 1, "?/undecodable": 1}
	for _, r := range got.Reasons[1:] {
		if want[r.Stage+"/"+r.Code] != r.Seen || len(r.Samples) != 1 {
			t.Errorf("reason %+v", r)
		}
	}
}
