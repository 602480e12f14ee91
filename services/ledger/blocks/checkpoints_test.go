package blocks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/ledger/blocks"
)

// BenchmarkCheckpointStore measures one publication's store on the real
// broker: the checkpoints topic, the record in the entries topic (its own
// transaction, also timed alone), then the copy to every partner topic
// (listed again every TopicsTTL, 5s), with 1 and 20 partners (2 and 40
// topics). It reports ms per publication and the ratio of the fan-out to
// the checkpoints topic alone.
// Run: go test -run '^$' -bench CheckpointStore -benchtime 200x ./services/ledger/blocks
func BenchmarkCheckpointStore(b *testing.B) {
	for _, partners := range []int{1, 20} {
		b.Run(fmt.Sprintf("partners=%d", partners), func(b *testing.B) {
			var specs []pipelines.TopicSpec
			for i := range partners {
				p := fmt.Sprintf("p%02d", i)
				specs = append(specs, pipelines.TopicSpec{Name: pipelines.PartnerRedemptionsTopic(p), Partitions: 1},
					pipelines.TopicSpec{Name: pipelines.PartnerCampaignsTopic(p), Partitions: 1})
			}
			brokers := kafkatest.Broker(b, specs...)
			cfg := kafkatest.Config(brokers)
			prod, err := kafka.NewProducer(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer prod.Close()
			st, err := blocks.NewCheckpointStore(cfg, prod, kafkatest.Logger(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			note := []byte("minecart/ledger\n1000\n4nG5fyiGZhxjZNNKM5k2qllG6DLd3SMAKAiKM/PmJjM=\n\n— minecart/ledger AAAA\n— w1 BBBB\n— w2 CCCC\n")
			ctx := context.Background()
			if err := st.Store(ctx, 0, note); err != nil { // warm up: connections, metadata, the topic list
				b.Fatal(err)
			}
			alone := time.Now()
			for i := 0; i < b.N; i++ {
				if err := prod.ProduceSync(ctx, pipelines.TopicLedgerCheckpoints, fmt.Appendf(nil, "%020d", i), note); err != nil {
					b.Fatal(err)
				}
			}
			a := time.Since(alone)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := st.Store(ctx, uint64(i), note); err != nil {
					b.Fatal(err)
				}
			}
			d := time.Since(start)
			b.StopTimer()
			// The entries topic's record alone: one transaction each.
			tx := time.Now()
			for i := 0; i < b.N; i++ {
				if wrote, err := st.ToEntries(ctx, uint64(b.N+1+i), note); err != nil || !wrote {
					b.Fatalf("entries record %d: %v %v", b.N+1+i, wrote, err)
				}
			}
			b.ReportMetric(float64(time.Since(tx).Microseconds())/1000/float64(b.N), "ms/entries-record")
			if n, err := st.ToPartners(ctx, 1, note); err != nil || n != 2*partners {
				b.Fatalf("copied to %d topics: %v", n, err)
			}
			b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), "ms/publication")
			b.ReportMetric(float64(a.Microseconds())/1000/float64(b.N), "ms/checkpoints-topic-alone")
			b.ReportMetric(d.Seconds()/a.Seconds(), "ratio")
		})
	}
}
