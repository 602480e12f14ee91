package stage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// redemptionLoad starts settlement and the ledger (settletest) with opts,
// funds owners accounts o0.. and puts partner acme's item mug (10 points),
// and returns n redemption requests spread over the owners, not yet sent.
func redemptionLoad(b *testing.B, opts settletest.Options, n, owners int) (*settletest.Env, []kafka.Output) {
	env := settletest.StartWith(b, opts, "acme")
	for i := range owners {
		env.Fund(fmt.Sprintf("o%d", i), 1<<30)
	}
	env.PutItem("acme", "mug", 10, nil)
	env.WaitBalance(fmt.Sprintf("o%d", owners-1), 1<<30)
	outs := make([]kafka.Output, 0, n)
	for i := range n {
		rq := avro.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: fmt.Sprintf("o%d", i%owners), Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: time.Now()}
		v, err := env.Serde.Marshal(&rq)
		if err != nil {
			b.Fatal(err)
		}
		outs = append(outs, kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte(rq.Owner), Value: v})
	}
	return env, outs
}

// BenchmarkStage runs n redemption requests through the settlement stage
// and the real ledger stage (request -> reserve -> hold request -> ledger
// block -> hold entry -> confirm and order), and compares with the bare franz-go
// consume-and-produce of n records measured on the same broker.
func BenchmarkStage(b *testing.B) {
	const n, owners = 5000, 500
	for range b.N {
		env, outs := redemptionLoad(b, settletest.Options{}, n, owners)
		start := time.Now()
		kafkatest.Produce(b, env.Brokers, outs...)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicLedgerRequests, n+owners, 5*time.Minute)
		hop1 := time.Since(start)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicLedgerEntries, n+owners, 5*time.Minute)
		hop2 := time.Since(start)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.PartnerRedemptionsTopic("acme"), n, 5*time.Minute)
		stage := time.Since(start)
		b.Logf("hold requests after %v, ledger entries after %v, orders after %v", hop1, hop2, stage)

		kafkatest.CreateTopics(b, env.Brokers, pipelines.TopicSpec{Name: "bench.in", Partitions: 1}, pipelines.TopicSpec{Name: "bench.out", Partitions: 1})
		for i := range outs {
			outs[i].Topic = "bench.in"
		}
		kafkatest.Produce(b, env.Brokers, outs...)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		base, err := kafkatest.Passthrough(ctx, env.Brokers, "bench.in", "bench.out", n)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/stage.Seconds(), "redemptions/s")
		b.ReportMetric(float64(n)/base.Seconds(), "baseline_records/s")
		b.ReportMetric(base.Seconds()/stage.Seconds(), "ratio")
	}
}

// BenchmarkSealStatus alternates, within one run, the redemption path of
// BenchmarkStage with the status in clear and with SealStatus (every
// status sealed for the owner's account, docs/privacy.md), each on its
// own broker, and reports both rates and sealed/clear.
func BenchmarkSealStatus(b *testing.B) {
	const n, owners = 2000, 200
	run := func(seal bool) time.Duration {
		env, outs := redemptionLoad(b, settletest.Options{SealStatus: seal}, n, owners)
		start := time.Now()
		kafkatest.Produce(b, env.Brokers, outs...)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.PartnerRedemptionsTopic("acme"), n, 5*time.Minute)
		// Every status written: pending and confirmed of each.
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicRedemptionStatus, 2*n, 5*time.Minute)
		return time.Since(start)
	}
	var clear, sealed time.Duration
	for i := range b.N {
		if i%2 == 0 {
			clear += run(false)
			sealed += run(true)
		} else {
			sealed += run(true)
			clear += run(false)
		}
	}
	b.ReportMetric(float64(n*b.N)/clear.Seconds(), "clear_redemptions/s")
	b.ReportMetric(float64(n*b.N)/sealed.Seconds(), "sealed_redemptions/s")
	b.ReportMetric(sealed.Seconds()/clear.Seconds(), "sealed/clear")
}
