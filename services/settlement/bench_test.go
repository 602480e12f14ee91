package settlement_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// BenchmarkBook is the pure domain: one redemption accepted, its debit
// applied, per op (1,000 accounts), with the changelog values encoded as
// the stage does; the baseline is encoding the request and the status
// records alone (the Avro share of the stage's work).
func BenchmarkBook(b *testing.B) {
	book, err := settlement.NewBook(settlement.DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	commit := func(tx *settlement.Tx, err error) *settlement.Tx {
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range tx.Changes() {
			if _, err := settlement.EncodeChange(c); err != nil {
				b.Fatal(err)
			}
		}
		tx.Commit()
		return tx
	}
	leaf := int64(0)
	for i := range 1000 {
		commit(book.Apply(settlement.Entry{Kind: settlement.KindAdjustment, Account: fmt.Sprintf("o%d", i), Amount: 1 << 40, Proof: settlement.Proof{LeafIndex: leaf}}))
		leaf++
	}
	commit(book.PutItem(settlement.CatalogItem{Partner: "acme", ItemID: "mug", PricePoints: 10, Active: true}))
	codec := settlement.NewCodec(schemas.SingleObject())
	now := time.Now()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		tx := commit(book.Redeem(settlement.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: fmt.Sprintf("o%d", i%1000), Partner: "acme", ItemID: "mug", Quantity: 1, RequestedAt: now}))
		d := tx.Debits[0]
		commit(book.Apply(settlement.Entry{Kind: settlement.KindDebit, Account: d.Account, Amount: d.Amount, RedemptionID: d.RedemptionID, Proof: settlement.Proof{LeafIndex: leaf}}))
		leaf++
	}
	domain := time.Since(start)
	start = time.Now()
	for i := range b.N {
		rq := settlement.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: "o1", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedAt: now}
		v, _ := codec.EncodeRequest(rq)
		if _, err := codec.DecodeRequest(v); err != nil {
			b.Fatal(err)
		}
		r := settlement.Redemption{ID: "x", Owner: "o1", Partner: "acme", ItemID: "mug", Quantity: 1, Points: 10, Status: settlement.StatusConfirmed, RequestedAt: now, UpdatedAt: now}
		for range 3 { // PENDING, CONFIRMED status and the order
			if _, err := codec.EncodeRedemption(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	avro := time.Since(start)
	b.ReportMetric(float64(b.N)/domain.Seconds(), "redemptions/s")
	b.ReportMetric(avro.Seconds()/domain.Seconds(), "avro/domain")
}

// BenchmarkStage runs n redemption requests through the settlement stage
// and the real ledger stage (request -> reserve -> debit request -> ledger
// block -> entry -> confirm), and compares with the bare franz-go
// consume-and-produce of n records measured on the same broker.
func BenchmarkStage(b *testing.B) {
	const n, owners = 5000, 500
	for range b.N {
		env := settletest.Start(b, "acme")
		for i := range owners {
			env.Fund(fmt.Sprintf("o%d", i), 1<<30)
		}
		env.PutItem("acme", "mug", 10, nil)
		env.WaitBalance(fmt.Sprintf("o%d", owners-1), 1<<30)
		var outs []kafka.Output
		for i := range n {
			rq := settlement.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: fmt.Sprintf("o%d", i%owners), Partner: "acme", ItemID: "mug", Quantity: 1, RequestedAt: time.Now().UTC()}
			v, err := env.Codec.EncodeRequest(rq)
			if err != nil {
				b.Fatal(err)
			}
			outs = append(outs, kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte(rq.Owner), Value: v})
		}
		start := time.Now()
		kafkatest.Produce(b, env.Brokers, outs...)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicLedgerRequests, n+owners, 5*time.Minute)
		hop1 := time.Since(start)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicLedgerEntries, n+owners, 5*time.Minute)
		hop2 := time.Since(start)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.PartnerRedemptionsTopic("acme"), n, 5*time.Minute)
		stage := time.Since(start)
		b.Logf("debit requests after %v, ledger entries after %v, orders after %v", hop1, hop2, stage)

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
