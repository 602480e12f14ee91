package api_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/settletest"
)

func TestTransfersHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t)
	env.Fund("alice", 100)
	env.WaitBalance("alice", 100)
	srv := env.API(5 * time.Second)
	alice, bob := env.Token("alice"), env.Token("bob")
	post := func(tok, body string) (int, api.TransferJSON, string) {
		t.Helper()
		code, raw, err := settletest.Do(srv, http.MethodPost, "/v1/transfers", tok, "", body)
		if err != nil {
			t.Fatal(err)
		}
		var x api.TransferJSON
		_ = json.Unmarshal(raw, &x)
		return code, x, string(raw)
	}
	const id1, id2, id3 = "0000000000000000000000000000a001", "0000000000000000000000000000a002", "0000000000000000000000000000a003"
	body1 := `{"id":"` + id1 + `","debit_account":"alice","credit_account":"bob","amount":30}`
	code, x, raw := post(alice, body1)
	if code != http.StatusCreated || x.Status != settlement.TransferCommitted || x.Entry == nil || x.Entry.LeafIndex != 1 {
		t.Fatalf("create: %d %s", code, raw)
	}
	// The same id and body: the first result, no second effect.
	if code, x2, raw := post(alice, body1); code != http.StatusCreated || x2.Entry == nil || x2.Entry.LeafIndex != 1 {
		t.Fatalf("replay: %d %s", code, raw)
	}
	// The same id, another body: 409.
	if code, _, raw := post(alice, strings.Replace(body1, `"amount":30`, `"amount":31`, 1)); code != http.StatusConflict || !strings.Contains(raw, "different body") {
		t.Fatalf("conflict: %d %s", code, raw)
	}
	// Someone else's account: 403; too much: 422 with the reason.
	if code, _, raw := post(bob, strings.Replace(body1, id1, id2, 1)); code != http.StatusForbidden {
		t.Fatalf("bob debits alice: %d %s", code, raw)
	}
	if code, x, raw := post(alice, `{"id":"`+id2+`","debit_account":"alice","credit_account":"bob","amount":71}`); code != http.StatusUnprocessableEntity || x.Reason != settlement.ReasonExceedsCredits {
		t.Fatalf("overdraw: %d %s", code, raw)
	}
	// A hold, posted by the payee.
	if code, x, raw := post(alice, `{"id":"`+id3+`","debit_account":"alice","credit_account":"bob","amount":50,"flags":["pending"],"timeout_ms":600000}`); code != http.StatusCreated || x.Pending != settlement.PendingOpen {
		t.Fatalf("pending: %d %s", code, raw)
	}
	if code, x, raw := post(bob, `{"transfers":[{"id":"0000000000000000000000000000a004","pending_id":"`+id3+`","flags":["post_pending"]}]}`); code != http.StatusOK || !strings.Contains(raw, `"status":"COMMITTED"`) {
		t.Fatalf("post: %d %v %s", code, x, raw)
	}
	env.WaitBalance("bob", 80)
	if a := env.Account("alice"); a.Balance != 20 || a.Reserved != 0 {
		t.Fatalf("alice %+v", a)
	}
	code, got, _ := settletest.Do(srv, http.MethodGet, "/v1/transfers/"+id3, bob, "", "")
	if code != http.StatusOK || !strings.Contains(string(got), `"pending_state":"POSTED"`) {
		t.Fatalf("get: %d %s", code, got)
	}
	carol := env.Token("carol")
	if code, _, _ := settletest.Do(srv, http.MethodGet, "/v1/transfers/"+id3, carol, "", ""); code != http.StatusForbidden {
		t.Fatalf("carol reads alice's transfer: %d", code)
	}
	code, got, _ = settletest.Do(srv, http.MethodGet, "/v1/transfers?account=alice", alice, "", "")
	if code != http.StatusOK || strings.Count(string(got), `"id"`) != 4 {
		t.Fatalf("list: %d %s", code, got)
	}
	if code, _, _ := settletest.Do(srv, http.MethodGet, "/v1/transfers?account=bob", alice, "", ""); code != http.StatusForbidden {
		t.Fatalf("alice lists bob's: %d", code)
	}
	for _, bad := range []string{`{"id":"XYZ","debit_account":"alice","credit_account":"bob","amount":1}`,
		`{"id":"` + id1 + `","debit_account":"alice","credit_account":"bob","amount":1,"flags":["expire_pending"]}`,
		`{"id":"` + id1 + `","extra":1}`, `{"transfers":[]}`} {
		if code, _, raw := post(alice, bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, raw)
		}
	}
}

// TestTransfersConcurrent: many clients transfer at random among 100
// accounts at once, across a restart of the settlement stage, on the real
// broker with the real ledger stage. Afterwards: no account below zero,
// the sum of balances unchanged, every replayed request answered with its
// first result, every pending with a timeout resolved exactly once, and
// the balances recomputed from the ledger's entries alone equal
// settlement's. MINECART_TRANSFERS (e.g. 100000, make transfers-soak) sets
// the number of transfers (default 10,000; 2,000 under -race).
func TestTransfersConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	const accounts, clients, fund = 100, 32, 1000
	total := 10_000
	if raceEnabled {
		total = 2_000 // -race (make test) is ~10x slower; the full count runs without it
	}
	if v, err := strconv.Atoi(os.Getenv("MINECART_TRANSFERS")); err == nil && v > 0 {
		total = v
	}
	env := settletest.Start(t)
	acct := func(i int) string { return fmt.Sprintf("acct-%03d", i) }
	for i := range accounts {
		env.Fund(acct(i), fund)
	}
	env.WaitBalance(acct(accounts-1), fund)
	for i := range accounts {
		env.WaitBalance(acct(i), fund)
	}

	var (
		sent      atomic.Int64
		restarted sync.Once
		mu        sync.Mutex
		first     = map[string]settlement.Transfer{}
		specs     = map[string]settlement.TransferSpec{}
		replays   atomic.Int64
		conflicts atomic.Int64
		restarts  atomic.Int64
	)
	restart := func() {
		env.StopSettlement()
		env.StartSettlement()
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			var mine []string // this client's pending transfers
			newID := func() string {
				var b [16]byte
				for i := range b {
					b[i] = byte(rng.UintN(256))
				}
				b[0] |= 0x80
				return hex.EncodeToString(b[:])
			}
			for n := sent.Add(1); n <= int64(total); n = sent.Add(1) {
				if n == int64(total/2) {
					restarted.Do(restart)
					restarts.Add(1)
				}
				b := settlement.TransferBatch{CallerRole: string(avro.RoleOperator), CallerID: "ops", RequestedAt: time.Now().UTC().Truncate(time.Millisecond)}
				d, cr := rng.IntN(accounts), rng.IntN(accounts-1)
				if cr >= d {
					cr++
				}
				s := settlement.TransferSpec{ID: newID(), Debit: acct(d), Credit: acct(cr), Amount: 1 + rng.Int64N(80)}
				switch k := rng.IntN(20); {
				case k < 3:
					s.Flags = ledger.TransferPending
					if rng.IntN(2) == 0 {
						s.TimeoutMs = 50 + rng.Int64N(500)
					}
				case k < 6 && len(mine) > 0:
					p := mine[rng.IntN(len(mine))]
					s = settlement.TransferSpec{ID: s.ID, PendingID: p, Flags: ledger.TransferPostPending}
					if k == 5 {
						s.Flags = ledger.TransferVoidPending
					}
				case k == 6:
					// A replay of an earlier request of anyone (the same body).
					mu.Lock()
					for id := range specs {
						s = specs[id]
						break
					}
					mu.Unlock()
				}
				b.Transfers = []settlement.TransferSpec{s}
				res, err := api.Submit(ctx, env.Producer, env.Serde, env.State, b, time.Minute, 5*time.Millisecond)
				if err != nil {
					errs <- fmt.Errorf("transfer %s: %w", s.ID, err)
					return
				}
				r := res[0]
				if r.Status == "" {
					errs <- fmt.Errorf("transfer %s not decided within a minute", s.ID)
					return
				}
				mu.Lock()
				if f, ok := first[s.ID]; ok {
					replays.Add(1)
					if (f.Status == settlement.TransferRejected) != (r.Status == settlement.TransferRejected) || f.Reason != r.Reason {
						mu.Unlock()
						errs <- fmt.Errorf("replay of %s: %s/%s, first %s/%s", s.ID, r.Status, r.Reason, f.Status, f.Reason)
						return
					}
				} else {
					first[s.ID], specs[s.ID] = r, s
				}
				mu.Unlock()
				if r.Status != settlement.TransferRejected && s.Flags&ledger.TransferPending != 0 {
					mine = append(mine, s.ID)
				}
				if rng.IntN(50) == 0 { // the same id with another body
					s.Amount++
					if s.Flags.Resolves() {
						s.Amount = 1
					}
					b.Transfers[0] = s
					if _, err := api.Submit(ctx, env.Producer, env.Serde, env.State, b, time.Second, 5*time.Millisecond); !errors.Is(err, api.ErrConflict) {
						errs <- fmt.Errorf("another body under id %s: %v, want ErrConflict", s.ID, err)
						return
					}
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Every timeout passes (settlement's tick requests the expiries).
	env.Wait(60*time.Second, func() bool {
		for id, x := range first {
			st, _, _ := settlement.ReadTransfer(env.State, id)
			if x.Status != settlement.TransferRejected && (st.Status != settlement.TransferCommitted ||
				st.Pending == settlement.PendingOpen && st.TimeoutMs > 0 || st.ResolvedBy != "" && !st.Resolved) {
				return false
			}
		}
		return true
	}, func() string { return "every accepted transfer committed and every timed pending resolved" })

	// The book alone: read every entry of the entries topic.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	recs, err := kafkatest.ReadCommitted(rctx, env.Brokers, pipelines.TopicLedgerEntries)
	if err != nil {
		t.Fatal(err)
	}
	book := map[string]int64{}
	opened, resolved := map[string]ledger.Entry{}, map[string]int{}
	accepted, rejected := 0, 0
	for _, x := range first {
		if x.Status == settlement.TransferRejected {
			rejected++
		} else {
			accepted++
		}
	}
	for _, rec := range recs {
		var r avro.LedgerEntry
		if err := env.Serde.Unmarshal(rec.Value, &r); err != nil {
			t.Fatal(err)
		}
		e, err := ledger.DecodeEntry(r.Entry)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Kind == ledger.KindAdjustment:
			book[e.Account] += e.Amount
		case e.TransferFlags&ledger.TransferPending != 0:
			opened[e.ID] = e
		case e.TransferFlags.Resolves():
			resolved[e.Ref]++
		}
		if e.Kind == ledger.KindTransfer && e.TransferFlags.Moves() {
			book[e.Account] -= e.Amount
			book[e.CounterAccount] += e.Amount
		}
	}
	var sum int64
	for i := range accounts {
		a := env.Account(acct(i))
		// The leaves name accounts by pseudonym (docs/ledger.md).
		o, err := env.Pseudonyms.Lookup(rctx, pseudonym.Account, acct(i))
		if err != nil {
			t.Fatalf("%s: %v", acct(i), err)
		}
		if a.Balance != book[o.Pseudonym] || a.Balance < 0 || a.Available() < 0 {
			t.Errorf("%s: settlement %+v, the book alone %d", acct(i), a, book[o.Pseudonym])
		}
		sum += a.Balance
	}
	if sum != accounts*fund {
		t.Errorf("sum of balances %d, want %d", sum, accounts*fund)
	}
	for id, e := range opened {
		if n := resolved[id]; n > 1 || n == 0 && e.TimeoutMs > 0 {
			t.Errorf("pending %s (timeout %d) resolved %d times", id, e.TimeoutMs, n)
		}
	}
	dead, _ := kafkatest.ReadCommitted(rctx, env.Brokers, pipelines.TopicDeadLetter)
	if len(dead) != 0 {
		t.Errorf("%d dead letters", len(dead))
	}
	t.Logf("%d transfers (%d accepted, %d rejected), %d replays, %d conflicts, %d entries, %d pending (%d resolved)",
		len(first), accepted, rejected, replays.Load(), conflicts.Load(), len(recs), len(opened), len(resolved))
	if accepted < total/4 || restarts.Load() != 1 || replays.Load() == 0 || conflicts.Load() == 0 || len(resolved) == 0 {
		t.Error("the run did not exercise what it checks")
	}
}
