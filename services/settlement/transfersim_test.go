package settlement_test

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// This file is the deterministic simulation of transfers (docs/economy.md
// "How the invariants are tested"): settlement's Book and a model of the
// ledger stage, driven by one seeded scheduler that interleaves clients'
// batches (reordering them), redelivers requests and entries (duplicates,
// as a consumer does after an aborted transaction), crashes settlement
// between deciding and committing (the Kafka transaction aborts: the
// decision is lost, the input is read again) and restarts it from its
// changelog, and moves ledger time. After every step it checks the
// invariants; at the end it drains everything and checks that every
// pending transfer resolved exactly once, that replaying any request
// changes nothing, and that the balances recomputed from the book alone
// equal settlement's.

// simLedger models the ledger stage: it appends requests in the order of
// the requests topic, at most once per id, in blocks stamped with its
// clock (or an expiry's deadline, if later), and publishes each entry with
// its leaf index.
type simLedger struct {
	queue   []avro.TransferRequest
	ids     map[string]bool
	entries []ledger.Entry // the book
	stamps  []int64        // block timestamp of each entry
	clockMs int64
}

func (l *simLedger) flush(n int) {
	if n > len(l.queue) {
		n = len(l.queue)
	}
	if n == 0 {
		return
	}
	batch := l.queue[:n]
	l.queue = l.queue[n:]
	ts := l.clockMs
	var add []ledger.Entry
	for _, r := range batch {
		e, err := ledger.EntryFromTransfer(&r)
		if err != nil {
			panic(fmt.Sprintf("the ledger refused a request settlement accepted: %v", err))
		}
		if l.ids[e.ID] {
			continue
		}
		l.ids[e.ID] = true
		ts = max(ts, r.NotBeforeMs)
		add = append(add, e)
	}
	for _, e := range add {
		l.entries = append(l.entries, e)
		l.stamps = append(l.stamps, ts)
	}
}

// record is the entries topic record of the book's entry i.
func (l *simLedger) record(i int) settlement.Entry {
	e := l.entries[i]
	raw, err := e.Encode()
	if err != nil {
		panic(err)
	}
	r := avro.LedgerEntry{Entry: raw, LeafIndex: int64(i), Kind: avro.EntryKind(e.Kind.String()), ID: e.ID,
		Account: e.Account, CounterAccount: e.CounterAccount, Delta: e.Delta(), BlockTimestampMs: l.stamps[i],
		VehicleID: e.VehicleID, Ref: e.Ref, Reason: e.Reason}
	return settlement.EntryFrom(&r)
}

// simSettlement is the settlement task: the book and its changelog.
type simSettlement struct {
	t    testing.TB
	book *settlement.Book
	log  map[string][]byte
	next int // next entry of the book to read
}

func newSimSettlement(t testing.TB) *simSettlement {
	s := &simSettlement{t: t, log: map[string][]byte{}}
	s.restart()
	return s
}

// restart rebuilds the book from the changelog (and, like the runtime,
// resumes reading entries at the committed offset, kept in the book's
// Meta.NextLeaf).
func (s *simSettlement) restart() {
	b, err := settlement.NewBook(settlement.DefaultPolicy())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, k := range slices.Sorted(maps.Keys(s.log)) {
		if err := b.Restore(k, s.log[k]); err != nil {
			s.t.Fatal(err)
		}
	}
	b.Restored()
	s.book = b
	s.next = int(b.NextLeaf())
}

// commit writes tx's changes to the changelog, commits it and queues its
// ledger requests.
func (s *simSettlement) commit(tx *settlement.Tx, l *simLedger) {
	for _, c := range tx.Changes() {
		v, err := settlement.EncodeChange(c)
		if err != nil {
			s.t.Fatal(err)
		}
		if v == nil {
			delete(s.log, c.Key)
		} else {
			s.log[c.Key] = v
		}
	}
	for _, a := range tx.Alerts {
		s.t.Errorf("alert %s: %s", a.Kind, a.Msg)
	}
	l.queue = append(l.queue, tx.Transfers...)
	tx.Commit()
}

// sim is one seeded run.
type sim struct {
	t        testing.TB
	rng      *rand.Rand
	l        *simLedger
	s        *simSettlement
	accounts []string
	minted   int64
	sent     []settlement.TransferBatch // every batch delivered, for replays
	first    map[string]settlement.Transfer
	pendings []string // accepted pending ids (candidates to post or void)
	inbox    [][]settlement.TransferBatch
	stats    simStats
}

type simStats struct {
	Batches, Transfers, Accepted, Rejected, Replays, Crashes, Restarts, EntryDups, Expired, Posted, Voided int
}

func newSim(t testing.TB, seed uint64, accounts, clients int) *sim {
	x := &sim{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), l: &simLedger{ids: map[string]bool{}, clockMs: 1_800_000_000_000},
		first: map[string]settlement.Transfer{}, inbox: make([][]settlement.TransferBatch, clients)}
	x.s = newSimSettlement(t)
	for i := range accounts {
		x.accounts = append(x.accounts, fmt.Sprintf("acct-%03d", i))
	}
	x.accounts = append(x.accounts, settlement.PartnerAccount("fuelco"))
	// Seed balances: one adjustment entry per owner account (the book's
	// credits), read by settlement like any entry.
	for i, a := range x.accounts[:accounts] {
		n := int64(100 + i*7)
		x.minted += n
		x.applyRaw(ledger.Entry{Kind: ledger.KindAdjustment, ID: "seed/" + a, Account: a, Amount: n, Reason: "seed"})
	}
	return x
}

// applyRaw appends an entry that is no transfer and has settlement read it.
func (x *sim) applyRaw(e ledger.Entry) {
	x.l.entries = append(x.l.entries, e)
	x.l.stamps = append(x.l.stamps, x.l.clockMs)
	x.deliverEntries(len(x.l.entries))
}

func (x *sim) id() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(x.rng.UintN(256))
	}
	b[0] |= 1
	return hex.EncodeToString(b[:])
}

// batch makes a random batch of a client acting as owner acct (or, one
// time in ten, an operator).
func (x *sim) batch() settlement.TransferBatch {
	owner := x.accounts[x.rng.IntN(len(x.accounts)-1)]
	b := settlement.TransferBatch{CallerRole: string(avro.RoleOwner), CallerID: owner,
		RequestedAt: time.UnixMilli(x.l.clockMs).UTC()}
	if x.rng.IntN(10) == 0 {
		b.CallerRole, b.CallerID = string(avro.RoleOperator), "ops"
	}
	n := 1
	if x.rng.IntN(4) == 0 {
		n = 2 + x.rng.IntN(3) // a linked chain
	}
	for i := range n {
		s := x.spec(&b, owner)
		if i < n-1 {
			s.Flags |= ledger.TransferLinked
		}
		b.Transfers = append(b.Transfers, s)
	}
	if n > 1 && x.rng.IntN(20) == 0 {
		b.Transfers[n-1].Flags |= ledger.TransferLinked // an open chain: refused as a whole
	}
	return b
}

func (x *sim) spec(b *settlement.TransferBatch, owner string) settlement.TransferSpec {
	s := settlement.TransferSpec{ID: x.id(), Debit: owner, Credit: x.accounts[x.rng.IntN(len(x.accounts))]}
	if b.CallerRole == string(avro.RoleOwner) && x.rng.IntN(30) == 0 {
		s.Debit = x.accounts[x.rng.IntN(len(x.accounts)-1)] // someone else's: forbidden unless it is the caller's
	}
	s.Amount = 1 + x.rng.Int64N(60)
	switch k := x.rng.IntN(10); {
	case k < 3:
		s.Flags = ledger.TransferPending
		if x.rng.IntN(2) == 0 {
			s.TimeoutMs = 1 + x.rng.Int64N(5_000)
		}
	case k < 5 && len(x.pendings) > 0:
		p := x.pendings[x.rng.IntN(len(x.pendings))]
		for range 3 { // mostly open ones
			if pt, ok := x.s.book.Transfer(p); ok && pt.Pending == settlement.PendingOpen {
				break
			}
			p = x.pendings[x.rng.IntN(len(x.pendings))]
		}
		s = settlement.TransferSpec{ID: s.ID, PendingID: p, Flags: ledger.TransferPostPending}
		if x.rng.IntN(2) == 0 {
			s.Flags = ledger.TransferVoidPending
		}
		if pt, ok := x.s.book.Transfer(p); ok && x.rng.IntN(4) > 0 {
			b.CallerRole, b.CallerID = string(avro.RoleOwner), pt.Credit // the payee resolves (mostly)
			if pid, ok := strings.CutPrefix(pt.Credit, settlement.PartnerPrefix); ok {
				b.CallerRole, b.CallerID = string(avro.RolePartner), pid
			}
		}
	case k == 5:
		s.Amount = 0 // refused
	}
	return s
}

// deliver has settlement decide a batch, with a crash before the commit
// one time in twenty (the decision is lost and the batch read again).
func (x *sim) deliver(b settlement.TransferBatch, replay bool) {
	for {
		tx, results, err := x.s.book.Transfers(b)
		if err != nil {
			x.t.Fatalf("batch refused as bad input: %v", err)
		}
		if x.rng != nil && x.rng.IntN(20) == 0 {
			x.stats.Crashes++
			x.s.restart()
			continue
		}
		x.s.commit(tx, x.l)
		for i, r := range results {
			id := b.Transfers[i].ID
			if f, ok := x.first[id]; ok {
				// The first decision stands (an accepted transfer may be
				// committed by now).
				if (r.Status == settlement.TransferRejected) != (f.Status == settlement.TransferRejected) || r.Reason != f.Reason || r.Digest != f.Digest {
					x.t.Fatalf("replay of %s: %s/%s, first %s/%s", id, r.Status, r.Reason, f.Status, f.Reason)
				}
				continue
			}
			if replay {
				x.t.Fatalf("replay of a delivered batch decided %s anew", id)
			}
			x.first[id] = r
			x.stats.Transfers++
			if r.Status == settlement.TransferRejected {
				x.stats.Rejected++
			} else {
				x.stats.Accepted++
				if r.Pending == settlement.PendingOpen {
					x.pendings = append(x.pendings, id)
				}
			}
		}
		if len(tx.Changes()) > 0 && replay {
			x.t.Fatalf("replay changed the state: %v", tx.Changes())
		}
		if !replay {
			x.sent = append(x.sent, b)
			x.stats.Batches++
		} else {
			x.stats.Replays++
		}
		return
	}
}

// deliverEntries has settlement read the book through entry upTo-1
// (crashing before the commit sometimes, and reading an old entry again
// sometimes).
func (x *sim) deliverEntries(upTo int) {
	upTo = min(upTo, len(x.l.entries))
	for x.s.next < upTo {
		i := x.s.next
		if i > 0 && x.rng != nil && x.rng.IntN(25) == 0 {
			x.stats.EntryDups++
			tx, _ := x.s.book.Apply(x.l.record(i - 1 - x.rng.IntN(i)))
			if len(tx.Transfers) > 0 || len(tx.Changes()) > 0 {
				x.t.Fatalf("an entry read again changed the state: %v", tx.Changes())
			}
			continue
		}
		tx, err := x.s.book.Apply(x.l.record(i))
		if err != nil {
			x.t.Fatal(err)
		}
		if x.rng != nil && x.rng.IntN(30) == 0 {
			x.stats.Crashes++
			x.s.restart()
			continue
		}
		x.s.commit(tx, x.l)
		x.s.next = i + 1
	}
}

func (x *sim) check(step int) {
	bal, _, _ := x.s.book.Totals()
	minted, redeemed := x.s.book.Points()
	if bal != minted-redeemed || minted != x.minted {
		x.t.Fatalf("step %d: sum of balances %d, minted %d (want %d) - redeemed %d", step, bal, minted, x.minted, redeemed)
	}
	for _, id := range x.accounts {
		a, _ := x.s.book.Account(id)
		if a.Balance < 0 || a.Available() < 0 || a.Reserved < 0 {
			x.t.Fatalf("step %d: account %s balance %d reserved %d available %d", step, id, a.Balance, a.Reserved, a.Available())
		}
	}
}

// run drives steps random actions, then drains.
func (x *sim) run(steps, clients int) {
	for c := range clients {
		for range 2 {
			x.inbox[c] = append(x.inbox[c], x.batch())
		}
	}
	for step := range steps {
		switch k := x.rng.IntN(100); {
		case k < 40: // a client's next batch (clients interleave at random)
			c := x.rng.IntN(clients)
			if len(x.inbox[c]) > 0 {
				x.deliver(x.inbox[c][0], false)
				x.inbox[c] = x.inbox[c][1:]
			} else {
				x.inbox[c] = append(x.inbox[c], x.batch())
			}
		case k < 48 && len(x.sent) > 0: // a duplicate of any request
			x.deliver(x.sent[x.rng.IntN(len(x.sent))], true)
		case k < 68:
			x.l.flush(1 + x.rng.IntN(8))
		case k < 85:
			x.deliverEntries(x.s.next + 1 + x.rng.IntN(len(x.l.entries)-x.s.next+1))
		case k < 92:
			x.l.clockMs += x.rng.Int64N(1500)
		case k < 96:
			x.commitTick(time.UnixMilli(x.l.clockMs + x.rng.Int64N(500) - 250).UTC())
		default:
			x.stats.Restarts++
			x.s.restart()
		}
		x.check(step)
	}
	for c := range clients {
		for _, b := range x.inbox[c] {
			x.deliver(b, false)
		}
	}
	// Drain: ledger time passes every timeout; every pending not resolved
	// by a client expires.
	for range 4 {
		x.l.flush(len(x.l.queue))
		x.deliverEntries(len(x.l.entries))
		x.l.clockMs += settlement.MaxTransferTimeout.Milliseconds()
		x.commitTick(time.UnixMilli(x.l.clockMs).UTC())
	}
	x.check(steps)
}

func (x *sim) commitTick(now time.Time) {
	x.s.commit(x.s.book.Tick(now), x.l)
}

// final checks the end state: every pending resolved exactly once, no
// reservation left, replays change nothing, and the book alone gives
// settlement's balances.
func (x *sim) final() {
	x.t.Helper()
	resolved := map[string][]ledger.Entry{}
	opened := map[string]ledger.Entry{}
	book := map[string]int64{}
	for i, e := range x.l.entries {
		switch {
		case e.Kind == ledger.KindAdjustment:
			book[e.Account] += e.Amount
		case e.TransferFlags&ledger.TransferPending != 0:
			opened[e.ID] = e
		case e.TransferFlags.Resolves():
			resolved[e.Ref] = append(resolved[e.Ref], e)
			if p, ok := opened[e.Ref]; !ok {
				x.t.Errorf("entry %d resolves %s, which is not in the book before it", i, e.Ref)
			} else if p.Account != e.Account || p.CounterAccount != e.CounterAccount || p.Amount != e.Amount {
				x.t.Errorf("entry %d resolves %s with other accounts or amount", i, e.Ref)
			}
			if e.TransferFlags&ledger.TransferExpirePending != 0 {
				x.stats.Expired++
				if p := opened[e.Ref]; p.TimeoutMs == 0 {
					x.t.Errorf("pending %s has no timeout but expired", e.Ref)
				} else if pi := slices.IndexFunc(x.l.entries, func(o ledger.Entry) bool { return o.ID == e.Ref }); x.l.stamps[i] < x.l.stamps[pi]+p.TimeoutMs {
					x.t.Errorf("pending %s expired at ledger time %d, before its deadline %d", e.Ref, x.l.stamps[i], x.l.stamps[pi]+p.TimeoutMs)
				}
			} else if e.TransferFlags&ledger.TransferPostPending != 0 {
				x.stats.Posted++
			} else {
				x.stats.Voided++
			}
		}
		if e.Kind == ledger.KindTransfer && e.TransferFlags.Moves() {
			book[e.Account] -= e.Amount
			book[e.CounterAccount] += e.Amount
		}
	}
	for id, p := range opened {
		if n := len(resolved[id]); n != 1 && p.TimeoutMs > 0 {
			x.t.Errorf("pending %s with a timeout resolved %d times, want exactly 1", id, n)
		} else if n > 1 {
			x.t.Errorf("pending %s resolved %d times", id, n)
		}
		st, _ := x.s.book.Transfer(id)
		if len(resolved[id]) == 1 != st.Resolved {
			x.t.Errorf("pending %s: settlement says resolved=%v, the book %d resolutions", id, st.Resolved, len(resolved[id]))
		}
	}
	for _, id := range x.accounts {
		a, _ := x.s.book.Account(id)
		if a.Balance != book[id] {
			x.t.Errorf("account %s: settlement balance %d, the book alone %d", id, a.Balance, book[id])
		}
		open := int64(0)
		for pid, p := range opened {
			if len(resolved[pid]) == 0 && p.Account == id {
				open += p.Amount
			}
		}
		if a.Reserved != open {
			x.t.Errorf("account %s: reserved %d, open pending transfers in the book %d", id, a.Reserved, open)
		}
	}
	before := slices.Clone(x.l.queue)
	for _, b := range x.sent {
		x.deliver(b, true)
	}
	if len(x.l.queue) != len(before) {
		x.t.Errorf("replaying every batch requested %d ledger entries", len(x.l.queue)-len(before))
	}
}

func TestTransferSimulation(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 10
	}
	var total simStats
	for seed := range uint64(seeds) {
		x := newSim(t, seed, 12, 6)
		x.run(600, 6)
		x.final()
		if t.Failed() {
			t.Fatalf("seed %d failed: %+v", seed, x.stats)
		}
		s := x.stats
		total.Batches += s.Batches
		total.Transfers += s.Transfers
		total.Accepted += s.Accepted
		total.Rejected += s.Rejected
		total.Replays += s.Replays
		total.Crashes += s.Crashes
		total.Restarts += s.Restarts
		total.EntryDups += s.EntryDups
		total.Expired += s.Expired
		total.Posted += s.Posted
		total.Voided += s.Voided
	}
	t.Logf("%d seeds: %+v", seeds, total)
	// The simulation must exercise what it claims to.
	if total.Accepted == 0 || total.Rejected == 0 || total.Replays == 0 || total.Crashes == 0 || total.Expired == 0 ||
		total.Posted == 0 || total.Voided == 0 || total.EntryDups == 0 {
		t.Errorf("a fault or a path never happened: %+v", total)
	}
}

// TestTransferSimulationDeterministic: the same seed gives the same
// book and the same settlement state.
func TestTransferSimulationDeterministic(t *testing.T) {
	run := func() ([]ledger.Entry, map[string][]byte) {
		x := newSim(t, 42, 10, 4)
		x.run(400, 4)
		return x.l.entries, x.s.log
	}
	e1, l1 := run()
	e2, l2 := run()
	if !reflect.DeepEqual(e1, e2) || !reflect.DeepEqual(l1, l2) {
		t.Fatal("two runs of seed 42 differ")
	}
}
