package settlement_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// BenchmarkBook is the pure domain: one redemption's whole life per op
// (1,000 accounts): accepted, its hold entry applied, the partner's ack,
// the post entry applied, with the changelog values encoded as
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
	serde := schemas.SingleObject()
	now := time.Now()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		tx := commit(book.Redeem(avro.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: fmt.Sprintf("o%d", i%1000), Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: now}))
		for phase := 0; phase < 2; phase++ {
			x := tx.Transfers[0]
			commit(book.Apply(settlement.Entry{Kind: settlement.KindTransfer, Account: x.DebitAccount, CounterAccount: x.CreditAccount,
				Amount: x.Amount, RequestID: x.RequestID, PendingID: x.PendingID, TransferFlags: ledger.TransferFlags(x.Flags),
				TimeoutMs: x.TimeoutMs, Proof: settlement.Proof{LeafIndex: leaf}, AppendedAt: now}))
			leaf++
			if phase == 0 {
				id := settlement.RedemptionID(fmt.Sprintf("o%d", i%1000), fmt.Sprint(i))
				tx = commit(book.Ack(settlement.PartnerAck{RedemptionID: id, Partner: "acme", Status: avro.AckStatusFulfilled, AckedAt: now}))
			}
		}
	}
	domain := time.Since(start)
	start = time.Now()
	for i := range b.N {
		rq := avro.RedemptionRequest{IdempotencyKey: fmt.Sprint(i), Owner: "o1", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: now}
		v, _ := serde.Marshal(&rq)
		if err := serde.Unmarshal(v, &avro.RedemptionRequest{}); err != nil {
			b.Fatal(err)
		}
		r := settlement.Redemption{ID: "x", Owner: "o1", Partner: "acme", ItemID: "mug", Quantity: 1, Points: 10, Status: settlement.StatusConfirmed, RequestedAt: now, UpdatedAt: now}
		for range 3 { // PENDING, CONFIRMED status and the order
			if _, err := serde.Marshal(r.Avro()); err != nil {
				b.Fatal(err)
			}
		}
	}
	wire := time.Since(start)
	b.ReportMetric(float64(b.N)/domain.Seconds(), "redemptions/s")
	b.ReportMetric(wire.Seconds()/domain.Seconds(), "avro/domain")
}
