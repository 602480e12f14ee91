package api_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// BenchmarkTransfers measures transfers end to end (Submit: the batch on
// the transfers topic -> settlement decides and reserves -> the ledger
// appends the entry -> settlement applies it -> the caller sees it
// COMMITTED with its proof), single (32 clients, one transfer per
// request) and batched (32 clients, 100 transfers per request), against
// the ledger's own append rate measured in the same run on the same
// broker (n adjustment requests produced at once, until their entries are
// on the entries topic). It prints RATIO lines: transfers/s over ledger
// entries/s.
//
//	go test -run '^$' -bench Transfers -benchtime 1x ./services/settlement/api/
func BenchmarkTransfers(b *testing.B) {
	const accounts, clients, n = 100, 32, 8000
	for range b.N {
		env := settletest.Start(b)
		acct := func(i int) string { return fmt.Sprintf("acct-%03d", i) }
		for i := range accounts {
			env.Fund(acct(i), 1<<40)
		}
		for i := range accounts {
			env.WaitBalance(acct(i), 1<<40)
		}

		// The ledger's own append rate: n adjustments at once.
		outs := make([]kafka.Output, n)
		for i := range outs {
			v, err := env.Serde.Marshal(&avro.DebitRequest{RequestID: fmt.Sprintf("bench/%d", i), Kind: avro.RequestKindAdjustment,
				Account: acct(i % accounts), Amount: 1, Reason: "bench", RequestedAt: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
			outs[i] = kafka.Output{Topic: pipelines.TopicLedgerRequests, Key: []byte(acct(i % accounts)), Value: v}
		}
		start := time.Now()
		kafkatest.Produce(b, env.Brokers, outs...)
		kafkatest.WaitRecords(b, env.Brokers, pipelines.TopicLedgerEntries, accounts+n, 5*time.Minute)
		ledgerRate := float64(n) / time.Since(start).Seconds()

		run := func(per int) float64 {
			var next atomic.Int64
			var wg sync.WaitGroup
			t0 := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						first := next.Add(int64(per)) - int64(per)
						if first >= n {
							return
						}
						batch := settlement.TransferBatch{CallerRole: string(avro.RoleOperator), CallerID: "bench", RequestedAt: time.Now().UTC()}
						for i := first; i < min(first+int64(per), n); i++ {
							batch.Transfers = append(batch.Transfers, settlement.TransferSpec{
								ID: fmt.Sprintf("%08x%08x%016x", per, c+1, i+1), Debit: acct(int(i) % accounts), Credit: acct((int(i) + 1 + c) % accounts), Amount: 1})
						}
						res, err := api.Submit(context.Background(), env.Producer, env.Serde, env.State, batch, time.Minute, 2*time.Millisecond)
						if err != nil {
							b.Error(err)
							return
						}
						for _, r := range res {
							if r.Status != settlement.TransferCommitted {
								b.Errorf("transfer %s: %s %s", r.ID, r.Status, r.Reason)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			return float64(n) / time.Since(t0).Seconds()
		}
		single := run(1)
		batched := run(100)
		b.ReportMetric(ledgerRate, "ledger-entries/s")
		b.ReportMetric(single, "transfers/s")
		b.ReportMetric(batched, "batched-transfers/s")
		fmt.Printf("transfers: ledger append %.0f entries/s; transfers end to end %.0f/s single (32 clients), %.0f/s in batches of 100\n", ledgerRate, single, batched)
		fmt.Printf("RATIO transfers_single %.3f goal 0.25\n", single/ledgerRate)
		fmt.Printf("RATIO transfers_batched %.3f goal 0.50\n", batched/ledgerRate)
	}
}
