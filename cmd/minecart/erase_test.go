package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/stack"
)

// TestPrivacyAndErasure runs a small simulated fleet through the whole
// pipeline (real broker, real chDB) with random pseudonym keys, then:
//
//   - no leaf, no record of the blocks, entries or partner credits topics
//     holds a vehicle id, and no leaf an owner id;
//   - the owner API gives the owner the opening of their vehicle, and the
//     check is done here from outside: the pseudonym recomputed with
//     crypto/hmac, the inclusion proof with transparency-dev/merkle;
//   - `minecart accounts erase` destroys the keys (the pseudonyms topic
//     has none for the owner), ClickHouse has no row naming the owner's
//     vehicles or account, the book has one kind 8 entry naming only the
//     account's pseudonym (the vehicles' keys go without an entry, so
//     nothing links them to the account), `minecart ledger verify` passes, and the owner API no
//     longer links the vehicle to its credits (404).
func TestPrivacyAndErasure(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ch := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	st, err := stack.Start(ctx, stack.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClickHouseDSN: ch.WriterDSN(), ClickHouseReadDSN: ch.AnalystDSN(), SessionTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }() // the stack of the moment: restarted below
	sim, err := fleet.New(fleet.Config{Seed: 5, Vehicles: 6, Days: 1, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	if rep, err := st.SendFleet(ctx, sim, 0, loadtest.SenderConfig{}, nil); err != nil || rep.Failed > 0 {
		t.Fatalf("send: %v %s", err, rep)
	}
	if err := st.WaitSettled(ctx, sim.End(), 3*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	vins := []string{}
	for _, v := range sim.Vehicles() {
		vins = append(vins, v.VehicleID)
	}
	owner := stack.OwnerOf(0) // vehicles 0 and 1
	mine := vins[:2]
	super, _ := st.Credentials.ByRole(broker.RoleSuperuser, "")
	kcfg := st.Pipelines

	// The owner redeems a coffee: an order on the partner's topic.
	rq := avro.RedemptionRequest{IdempotencyKey: "privacy-1", Owner: owner, Partner: stack.SimPartner, ItemID: "coffee", Quantity: 1, RequestedMs: time.Now()}
	rv, err := st.Serde.Marshal(&rq)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Producer.ProduceSync(ctx, pipelines.TopicRedemptions, []byte(owner), rv); err != nil {
		t.Fatal(err)
	}
	var order avro.Redemption
	for wctx, wcancel := context.WithTimeout(ctx, time.Minute); ; {
		if recs := readTopic(t, ctx, kcfg, pipelines.PartnerRedemptionsTopic(stack.SimPartner)); len(recs) > 0 {
			if err := st.Serde.Unmarshal(recs[0].Value, &order); err != nil {
				t.Fatal(err)
			}
			wcancel()
			break
		}
		if wctx.Err() != nil {
			var status []string
			for _, x := range readStatus(t, ctx, st) {
				status = append(status, fmt.Sprintf("%s %v", x.Status, x.Reason))
			}
			t.Fatalf("no order on the partner's topic; statuses %v", status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 0. Nothing personal on any topic the partner may read, read as the
	// partner: no vehicle id, no owner id, no position.
	pers := fleetPersonal(sim)
	leaks, counts := partnerLeaks(t, ctx, st, stack.SimPartner, pers)
	if len(leaks) > 0 {
		t.Fatalf("the partner reads personal data in clear (%d records), e.g. %v", len(leaks), leaks[:min(len(leaks), 5)])
	}
	if counts[pipelines.TopicRewardCredits] < len(vins) || counts[pipelines.PartnerRedemptionsTopic(stack.SimPartner)] != 1 ||
		counts[pipelines.TopicLedgerBlocks] == 0 || counts[pipelines.TopicLedgerEntries] == 0 {
		t.Fatalf("the partner read %v", counts)
	}
	t.Logf("partner %s read %v: no id, owner or position in clear", stack.SimPartner, counts)

	// 1. Nothing personal in the replicated topics.
	credits := 0
	for _, topic := range []string{pipelines.TopicLedgerBlocks, pipelines.TopicLedgerEntries, pipelines.TopicRewardCredits} {
		recs := readTopic(t, ctx, kcfg, topic)
		if len(recs) == 0 {
			t.Fatalf("%s is empty", topic)
		}
		for _, r := range recs {
			for _, v := range vins {
				if bytes.Contains(r.Value, []byte(v)) || bytes.Contains(r.Key, []byte(v)) {
					t.Fatalf("%s offset %d names vehicle %s in clear", topic, r.Offset, v)
				}
			}
		}
		if topic == pipelines.TopicLedgerBlocks {
			for _, r := range recs {
				var b avro.LedgerBlock
				if err := st.Serde.Unmarshal(r.Value, &b); err != nil {
					t.Fatal(err)
				}
				for _, raw := range b.Entries {
					e, err := ledger.DecodeEntry(raw)
					if err != nil {
						t.Fatal(err)
					}
					for _, id := range e.Identities() {
						if !pseudonym.Is(id) {
							t.Fatalf("leaf %+v names %q in clear", e, id)
						}
					}
					if e.Kind == ledger.KindCredit {
						credits++
					}
				}
			}
		}
	}
	if credits < len(vins) {
		t.Fatalf("%d credits for %d vehicles", credits, len(vins))
	}

	// 2. The owner checks their own credit from outside.
	var pts struct {
		Opening *struct {
			Pseudonym string `json:"pseudonym"`
			Kind      string `json:"kind"`
			VehicleID string `json:"vehicle_id"`
			Key       string `json:"key"`
		} `json:"opening"`
		Entries []struct {
			LeafIndex uint64 `json:"leaf_index"`
			Kind      string `json:"kind"`
			ID        string `json:"id"`
			Entry     []byte `json:"entry"`
			Proof     *struct {
				TreeSize uint64   `json:"tree_size"`
				Root     string   `json:"root"`
				Hashes   []string `json:"hashes"`
			} `json:"proof"`
		} `json:"entries"`
	}
	base := "http://" + st.HTTPAddr() + "/v1/vehicles/"
	if code := getAs(t, base+mine[0]+"/points", st.OperatorToken, &pts); code != http.StatusOK {
		t.Fatalf("points: %d", code)
	}
	if pts.Opening == nil || len(pts.Entries) == 0 {
		t.Fatalf("points without an opening or entries: %+v", pts)
	}
	key, _ := hex.DecodeString(pts.Opening.Key)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("minecart/vehicle/v1\x00" + mine[0]))
	if want := "p1:" + hex.EncodeToString(m.Sum(nil)[:16]); pts.Opening.Pseudonym != want || pts.Opening.VehicleID != mine[0] {
		t.Fatalf("opening %+v, recomputed pseudonym %s", pts.Opening, want)
	}
	for _, e := range pts.Entries {
		if !bytes.Contains(e.Entry, []byte(pts.Opening.Pseudonym)) || !strings.HasPrefix(e.ID, pts.Opening.Pseudonym+"/") {
			t.Fatalf("entry %s does not carry the pseudonym %s", e.ID, pts.Opening.Pseudonym)
		}
		if e.Proof == nil {
			t.Fatalf("entry %d without proof", e.LeafIndex)
		}
		var path [][]byte
		for _, h := range e.Proof.Hashes {
			b, _ := hex.DecodeString(h)
			path = append(path, b)
		}
		root, _ := hex.DecodeString(e.Proof.Root)
		lh := rfc6962.DefaultHasher.HashLeaf(e.Entry)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.LeafIndex, e.Proof.TreeSize, lh, path, root); err != nil {
			t.Fatalf("entry %d: transparency-dev/merkle: %v", e.LeafIndex, err)
		}
	}

	// The owner's pseudonyms: the order names the account's, as the hold's
	// leaf does.
	seal, err := pseudonym.LoadSealKey(filepath.Join(dir, "pseudonyms.key"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := follow.Snapshot(ctx, kcfg, seal, nil)
	if err != nil {
		t.Fatal(err)
	}
	acct, ok := before.Lookup(pseudonym.Account, owner)
	if !ok || order.Owner != acct.Pseudonym || order.IdempotencyKey != "" {
		t.Fatalf("the order names owner %q (idempotency key %q), want the account's pseudonym %+v", order.Owner, order.IdempotencyKey, acct)
	}
	mineP := []string{acct.Pseudonym}
	for _, v := range mine {
		o, ok := before.Lookup(pseudonym.Vehicle, v)
		if !ok {
			t.Fatalf("vehicle %s has no pseudonym", v)
		}
		mineP = append(mineP, o.Pseudonym)
		pers.links = append(pers.links, [2][]byte{[]byte(acct.Pseudonym), []byte(o.Pseudonym)})
	}

	// The order is an open hold: the erasure waits until it settles
	// (TestEraseWithOpenHold). The partner fulfils it.
	ack := avro.PartnerAck{RedemptionID: order.RedemptionID, Partner: stack.SimPartner, Status: avro.AckStatusFulfilled, Reference: "privacy-ref", AckedMs: time.Now()}
	av, err := st.Serde.Marshal(&ack)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Producer.ProduceSync(ctx, pipelines.TopicPartnerAcks, []byte(order.RedemptionID), av); err != nil {
		t.Fatal(err)
	}
	for wctx, wcancel := context.WithTimeout(ctx, time.Minute); ; {
		last := ""
		for _, x := range readStatus(t, ctx, st) {
			if x.RedemptionID == order.RedemptionID {
				last = string(x.Status)
			}
		}
		if last == string(avro.RedemptionStatusFulfilled) {
			wcancel()
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("the order is %s, not FULFILLED", last)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Before the erasure: every score on the topic kept forever is sealed
	// (no VIN in clear) and opens; what the other owners hold.
	names0, err := follow.Snapshot(ctx, kcfg, seal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc := checkShredded(t, ctx, st, names0, vins, nil); sc.opened < len(vins) || sc.shredded != 0 {
		t.Fatalf("before the erasure: %+v", sc)
	}
	// The redemption status topic, kept forever too: the owner's statuses
	// sealed for the account once it has a key (confirmed, fulfilled: the
	// hold made it; the credits name vehicles only), the pending one
	// before the hold anonymous.
	stBefore := checkStatus(t, ctx, st, names0, owner)
	if stBefore.opened[owner] < 2 || stBefore.anonymous < 1 || stBefore.shredded != 0 {
		t.Fatalf("redemption statuses before the erasure: %+v", stBefore)
	}
	sumBefore, err := st.Summary(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}

	// 3. Erase the owner.
	t.Setenv("MINECART_BROKERS", st.Broker.Addrs()[0])
	t.Setenv("MINECART_KAFKA_SASL", "scram-sha-512:"+super.Name+":"+super.Password)
	var out bytes.Buffer
	reportPath := filepath.Join(dir, "erasure.json")
	if err := run(ctx, []string{"accounts", "erase", "--owner", owner, "--reason", "test erasure", "--report", reportPath,
		"--pseudonym-key", filepath.Join(dir, "pseudonyms.key"), "--clickhouse-dsn", ch.WriterDSN()}, &out, io.Discard); err != nil {
		t.Fatalf("erase: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	checkErasureReport(t, reportPath, owner, mineP, mine)
	checkErasureExpiry(t, ctx, st, reportPath)

	// The keys are gone from the topic.
	names, err := follow.Snapshot(ctx, kcfg, seal, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mineP {
		if _, ok := names.Open(p); ok {
			t.Fatalf("pseudonym %s still opens", p)
		}
	}
	// What the partner holds still names no one in clear, and no record
	// links the erased account to one of its vehicles: what the partner
	// read before (the order's account pseudonym, the credits' vehicle
	// pseudonyms) has no key left.
	if leaks, _ := partnerLeaks(t, ctx, st, stack.SimPartner, pers); len(leaks) > 0 {
		t.Fatalf("after erasure the partner reads %v", leaks)
	}
	for _, v := range mine {
		if o, ok := names.Lookup(pseudonym.Vehicle, v); ok {
			t.Fatalf("vehicle %s still has key %s", v, o.Pseudonym)
		}
	}
	if _, ok := names.Lookup(pseudonym.Account, owner); ok {
		t.Fatal("the owner's account still has a key")
	}
	if _, ok := names.Lookup(pseudonym.Vehicle, vins[2]); !ok {
		t.Fatal("another owner's vehicle lost its key")
	}

	// No ClickHouse table names the owner or the vehicles.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: ch.Writer.Name, Password: ch.Writer.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	left, err := CountNaming(ctx, conn, append([]string{owner}, mine...))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("rows still naming the erased owner: %v", left)
	}
	others, err := CountNaming(ctx, conn, vins[2:])
	if err != nil || others["telemetry"] == 0 {
		t.Fatalf("the other vehicles' telemetry: %v %v", others, err)
	}

	// The book records the erasures (pseudonyms only) and still verifies.
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	var erasures []ledger.Entry
	for len(erasures) < 1 && wctx.Err() == nil {
		erasures = erasures[:0]
		for _, r := range readTopic(t, ctx, kcfg, pipelines.TopicLedgerBlocks) {
			var b avro.LedgerBlock
			if err := st.Serde.Unmarshal(r.Value, &b); err != nil {
				t.Fatal(err)
			}
			for _, raw := range b.Entries {
				if e, _ := ledger.DecodeEntry(raw); e.Kind == ledger.KindErasure {
					erasures = append(erasures, e)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// One entry, the account's: the vehicles' keys are destroyed with no
	// entry, so the book never names the account beside its vehicles.
	if len(erasures) != 1 || erasures[0].Account != acct.Pseudonym || erasures[0].VehicleID != "" {
		t.Fatalf("%d erasure entries %+v, want one naming the account's pseudonym %s alone", len(erasures), erasures, acct.Pseudonym)
	}
	for _, e := range erasures {
		for _, id := range e.Identities() {
			if !pseudonym.Is(id) {
				t.Fatalf("erasure entry names %q", id)
			}
		}
		if e.Reason != "test erasure" || e.RequestedAtMs == 0 {
			t.Fatalf("erasure entry %+v", e)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"ledger", "verify", "--pubkey", filepath.Join(dir, "ledger.key.pub")}, &out, io.Discard); err != nil {
		t.Fatalf("verify after erasure: %v\n%s", err, out.String())
	}
	// The owner API no longer links the vehicle to anything.
	if code := getAs(t, base+mine[0]+"/points", st.OperatorToken, nil); code != http.StatusNotFound && code != http.StatusGone {
		t.Fatalf("points of an erased vehicle: %d, want 404 or 410", code)
	}

	// 4. Crypto-shredding (docs/privacy.md): the scores topic, kept
	// forever, read from its start: no VIN in clear, the erased vehicles'
	// scores open under no key left, the others' open as before.
	sc := checkShredded(t, ctx, st, names, vins, mine)
	if sc.shredded < len(mine) || sc.opened < len(vins)-len(mine) {
		t.Fatalf("after the erasure: %+v", sc)
	}
	t.Logf("scores topic after the erasure: %+v", sc)
	// The owner's redemption statuses are shredded; any other's open.
	stAfter := checkStatus(t, ctx, st, names, owner)
	if stAfter.shredded != stBefore.opened[owner] || stAfter.opened[owner] != 0 || len(stAfter.opened) != len(stBefore.opened)-1 ||
		stAfter.anonymous != stBefore.anonymous {
		t.Fatalf("redemption statuses after the erasure: %+v, before it %+v", stAfter, stBefore)
	}
	t.Logf("redemption status topic after the erasure: %+v", stAfter)
	otherBalances := func(sum stack.Summary) map[string]int64 {
		m := map[string]int64{}
		for _, b := range sum.TopBalances {
			if b.Owner != owner && b.Owner != acct.Pseudonym {
				m[b.Owner] = b.Balance
			}
		}
		return m
	}
	sumAfter, err := st.Summary(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(otherBalances(sumBefore), otherBalances(sumAfter)) || len(otherBalances(sumAfter)) == 0 {
		t.Fatalf("the other owners' balances: before %v, after %v", otherBalances(sumBefore), otherBalances(sumAfter))
	}
	if len(sumAfter.TopDrivers) != len(sumBefore.TopDrivers)-sc.shredded {
		t.Fatalf("the summary reads %d scores after the erasure, %d before, %d shredded", len(sumAfter.TopDrivers), len(sumBefore.TopDrivers), sc.shredded)
	}

	// 5. A restart of every stage after the erasure rebuilds the same
	// state: the book (its root, and the credits' prefix), the other
	// owners' balances, the owner view (the erased vehicle's scores
	// skipped as shredded, the others' points there).
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = stack.Start(ctx, stack.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClickHouseDSN: ch.WriterDSN(), ClickHouseReadDSN: ch.AnalystDSN(), SessionTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	var sumRestart stack.Summary
	for wctx, wcancel := context.WithTimeout(ctx, time.Minute); ; {
		if sumRestart, err = st.Summary(ctx, 1000); err == nil && sumRestart.Root == sumAfter.Root && maps.Equal(otherBalances(sumRestart), otherBalances(sumAfter)) {
			wcancel()
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("after the restart: root %s (want %s), balances %v (want %v), err %v", sumRestart.Root, sumAfter.Root, otherBalances(sumRestart), otherBalances(sumAfter), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sumRestart.TreeSize != sumAfter.TreeSize || len(sumRestart.TopDrivers) != len(sumAfter.TopDrivers) {
		t.Fatalf("after the restart: %d entries, %d scores; before it %d, %d", sumRestart.TreeSize, len(sumRestart.TopDrivers), sumAfter.TreeSize, len(sumAfter.TopDrivers))
	}
	// The credits' part of the book is the book of before the erasure.
	found := false
	for _, r := range readTopic(t, ctx, st.Pipelines, pipelines.TopicLedgerBlocks) {
		var b avro.LedgerBlock
		if err := st.Serde.Unmarshal(r.Value, &b); err != nil {
			t.Fatal(err)
		}
		if uint64(b.TreeSize) == sumBefore.TreeSize && hex.EncodeToString(b.Root) != sumBefore.Root {
			t.Fatalf("the book at size %d has root %x after the erasure, %s before", b.TreeSize, b.Root, sumBefore.Root)
		}
		found = found || uint64(b.TreeSize) == sumBefore.TreeSize
	}
	if !found {
		t.Fatalf("no block ends at the size %d the book had before the erasure", sumBefore.TreeSize)
	}
	base = "http://" + st.HTTPAddr() + "/v1/vehicles/"
	for wctx, wcancel := context.WithTimeout(ctx, time.Minute); ; {
		code := getAs(t, base+vins[2]+"/points", st.OperatorToken, nil)
		erased := getAs(t, base+mine[0]+"/points", st.OperatorToken, nil)
		if code == http.StatusOK && (erased == http.StatusNotFound || erased == http.StatusGone) && counterValue(t, st, "minecart_owner_view_shredded_records_total") >= float64(sc.shredded) {
			wcancel()
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("after the restart: points of another vehicle %d, of the erased one %d, shredded scores skipped by the owner view %v",
				code, erased, counterValue(t, st, "minecart_owner_view_shredded_records_total"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// (A restored scoring task writes its watermark once more.)
	if sc2 := checkShredded(t, ctx, st, names, vins, mine); sc2.opened != sc.opened || sc2.shredded != sc.shredded {
		t.Fatalf("the scores topic after the restart: %+v, before it %+v", sc2, sc)
	}
}

// shredCount is what checkShredded found on the scores topic.
type shredCount struct{ opened, shredded, watermarks int }

// snapshotKeys is a complete directory (follow.Snapshot) as shred.Keys:
// nothing to catch up.
type snapshotKeys struct{ d *pseudonym.Directory }

func (k snapshotKeys) Directory() *pseudonym.Directory { return k.d }
func (snapshotKeys) CatchUp(context.Context) error     { return nil }
func (snapshotKeys) Sync(context.Context) error        { return nil }

// checkShredded reads the scores topic from its start: no record names a
// vehicle of vins in clear (key or value); every record is a watermark or
// sealed; a sealed record opens with the keys of names (a snapshot of the
// pseudonyms topic) to a score of a vehicle not in erased, or is shredded
// (its key destroyed), and then opens under none of the keys left and is
// the score of no vehicle that still has a key.
func checkShredded(t *testing.T, ctx context.Context, st *stack.Stack, names *pseudonym.Directory, vins, erased []string) shredCount {
	t.Helper()
	rd := shred.Reader{Keys: snapshotKeys{names}, Serde: st.Serde}
	var left []pseudonym.Opening
	for _, v := range vins {
		if o, ok := names.Lookup(pseudonym.Vehicle, v); ok {
			left = append(left, o)
		}
	}
	var c shredCount
	for _, r := range readTopic(t, ctx, st.Pipelines, pipelines.TopicScores) {
		for _, v := range vins {
			if bytes.Contains(r.Key, []byte(v)) || bytes.Contains(r.Value, []byte(v)) {
				t.Fatalf("scores offset %d names %s in clear", r.Offset, v)
			}
		}
		name, err := st.Serde.Name(r.Value)
		if err != nil {
			t.Fatalf("scores offset %d: %v", r.Offset, err)
		}
		if name == schemas.Watermark {
			c.watermarks++
			continue
		}
		if name != schemas.Sealed {
			t.Fatalf("scores offset %d: a %s in clear", r.Offset, name)
		}
		o, inner, _, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
		if errors.Is(err, shred.ErrShredded) {
			c.shredded++
			var s avro.Sealed
			if err := st.Serde.Unmarshal(r.Value, &s); err != nil {
				t.Fatal(err)
			}
			for _, k := range left {
				k.Pseudonym = s.Pseudonym // even under its own pseudonym, no other key opens it
				if _, err := shred.Open(k, r.Topic, s.Pseudonym, &s); err == nil {
					t.Fatalf("scores offset %d: a shredded score opens under the key of %s", r.Offset, k.ID)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("scores offset %d: %v", r.Offset, err)
		}
		var ds avro.DailyScore
		if err := st.Serde.Unmarshal(inner, &ds); err != nil || ds.VehicleID != o.ID || slices.Contains(erased, ds.VehicleID) {
			t.Fatalf("scores offset %d opens to %+v (key of %s): %v", r.Offset, ds, o.ID, err)
		}
		c.opened++
	}
	return c
}

// readStatus is every redemption status on the status topic that opens
// (the stack's follower of the pseudonyms topic), in order.
func readStatus(t *testing.T, ctx context.Context, st *stack.Stack) []avro.Redemption {
	t.Helper()
	rd := shred.Reader{Keys: st.Pseudonyms, Serde: st.Serde}
	var out []avro.Redemption
	for _, r := range readTopic(t, ctx, st.Pipelines, pipelines.TopicRedemptionStatus) {
		_, inner, _, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
		if errors.Is(err, shred.ErrShredded) {
			continue
		} else if err != nil {
			t.Fatalf("status offset %d: %v", r.Offset, err)
		}
		var x avro.Redemption
		if err := st.Serde.Unmarshal(inner, &x); err != nil {
			t.Fatalf("status offset %d: %v", r.Offset, err)
		}
		out = append(out, x)
	}
	return out
}

// statusCount is what checkStatus found on the redemption status topic:
// the sealed statuses that open, by owner; the shredded ones; the
// anonymous ones (an account without a key).
type statusCount struct {
	opened              map[string]int
	shredded, anonymous int
}

// checkStatus reads the redemption status topic from its start: no
// record names owner in clear (key or value); every record is sealed, or
// anonymous (owner, customer and idempotency key empty, under its
// redemption id); a sealed
// one opens with the keys of names to a status of the account it was
// sealed for, under that account's pseudonym, or is shredded.
func checkStatus(t *testing.T, ctx context.Context, st *stack.Stack, names *pseudonym.Directory, owner string) statusCount {
	t.Helper()
	rd := shred.Reader{Keys: snapshotKeys{names}, Serde: st.Serde}
	c := statusCount{opened: map[string]int{}}
	for _, r := range readTopic(t, ctx, st.Pipelines, pipelines.TopicRedemptionStatus) {
		if bytes.Contains(r.Key, []byte(owner)) || bytes.Contains(r.Value, []byte(owner)) {
			t.Fatalf("status offset %d names %s in clear", r.Offset, owner)
		}
		o, inner, sealed, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
		if errors.Is(err, shred.ErrShredded) {
			c.shredded++
			continue
		} else if err != nil {
			t.Fatalf("status offset %d: %v", r.Offset, err)
		}
		var x avro.Redemption
		if err := st.Serde.Unmarshal(inner, &x); err != nil {
			t.Fatalf("status offset %d: %v", r.Offset, err)
		}
		switch {
		case !sealed && x.Owner == "" && x.Customer == "" && x.IdempotencyKey == "" && string(r.Key) == x.RedemptionID:
			c.anonymous++
		case !sealed:
			t.Fatalf("status offset %d in clear: key %q, %+v", r.Offset, r.Key, x)
		case o.Kind != pseudonym.Account || o.ID != x.Owner || string(r.Key) != o.Pseudonym:
			t.Fatalf("status offset %d sealed for %s %s under %q opens to %+v", r.Offset, o.Kind, o.ID, r.Key, x)
		default:
			c.opened[x.Owner]++
		}
	}
	return c
}

// counterValue is the sum of a counter's series in the stack's registry.
func counterValue(t *testing.T, st *stack.Stack, name string) float64 {
	t.Helper()
	mfs, err := st.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// getAs GETs url with a bearer token and decodes a 200 answer into into.
func getAs(t *testing.T, url, tok string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// readTopic reads a whole single-partition topic.
func readTopic(t *testing.T, ctx context.Context, cfg kafka.Config, topic string) []pipelines.Record {
	t.Helper()
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []pipelines.Record
	if err := rd.ReadAll(ctx, topic, 0, func(r pipelines.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkErasureReport checks the erasure's record: the owner's keys
// destroyed, the vehicles unbound, the ClickHouse rows counted, and every
// topic it could not reach with its retention from the broker and the
// exact expiry erased_at + retention.ms + segment.ms (never for a topic
// kept forever).
func checkErasureReport(t *testing.T, path, owner string, pseudonyms, vehicles []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep ErasureReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, p := range pseudonyms {
		if !slices.Contains(rep.KeysDestroyed, p) {
			t.Errorf("report: key %s not destroyed: %v", p, rep.KeysDestroyed)
		}
	}
	if rep.Owner != owner || !rep.CredentialRemoved || !slices.Equal(slices.Sorted(slices.Values(rep.VehiclesUnbound)), slices.Sorted(slices.Values(vehicles))) ||
		rep.ClickHouseRows["telemetry"] == 0 || rep.ErasedAt.IsZero() {
		t.Errorf("report %+v", rep)
	}
	spec := map[string]pipelines.TopicSpec{}
	for _, s := range pipelines.Topology {
		spec[s.Name] = s
	}
	got := map[string]TopicExpiry{}
	for _, x := range rep.NotReached {
		got[x.Topic] = x
	}
	for _, e := range ErasureTopics {
		x, ok := got[e.Topic]
		s := spec[e.Topic]
		switch {
		case !ok:
			t.Errorf("report: topic %s missing", e.Topic)
		case s.Compacted:
			if x.CleanupPolicy != "compact" || x.ExpiresBy != "compaction" {
				t.Errorf("report: compacted %s: %+v", e.Topic, x)
			}
		case e.Shredded:
			if x.RetentionMs != -1 || x.ExpiresBy != "shredded" {
				t.Errorf("report: %s is kept forever, its records sealed: %+v", e.Topic, x)
			}
		case s.Retention == 0:
			if x.RetentionMs != -1 || x.ExpiresBy != "never" {
				t.Errorf("report: %s is kept forever: %+v", e.Topic, x)
			}
		default:
			want := rep.ErasedAt.Add(s.Retention + time.Duration(x.SegmentMs)*time.Millisecond).UTC().Format(time.RFC3339)
			if x.RetentionMs != s.Retention.Milliseconds() || x.SegmentMs <= 0 || x.ExpiresBy != want || len(x.EndOffsets) != int(s.Partitions) {
				t.Errorf("report: %s (retention %v): %+v, want expiry %s", e.Topic, s.Retention, x, want)
			}
		}
	}
}

// checkErasureExpiry: `accounts erasure-check` finds the telemetry written
// before the erasure still there (and --require-gone fails); once
// retention has run past it (retention.ms set to 1 on the two telemetry
// topics, the broker's retention pass run) it finds them gone, and the
// scores topic, kept forever, still holding its records.
func checkErasureExpiry(t *testing.T, ctx context.Context, st *stack.Stack, report string) {
	t.Helper()
	check := func(requireGone bool) (string, error) {
		var out bytes.Buffer
		args := []string{"accounts", "erasure-check", "--report", report}
		if requireGone {
			args = append(args, "--require-gone")
		}
		err := run(ctx, args, &out, io.Discard)
		return out.String(), err
	}
	line := func(out, topic string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, topic+" ") {
				return l
			}
		}
		return ""
	}
	out, err := check(false)
	if err != nil || !strings.Contains(line(out, pipelines.TopicTelemetryRaw), "records from before the erasure left") {
		t.Fatalf("erasure-check before retention: %v\n%s", err, out)
	}
	if _, err := check(true); err == nil {
		t.Fatal("erasure-check --require-gone passed with telemetry left")
	}
	super, _ := st.Credentials.ByRole(broker.RoleSuperuser, "")
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Broker.Addrs()...), stack.SASL(super))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	one := "1"
	if _, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &one}},
		pipelines.TopicTelemetryRaw, pipelines.TopicTelemetryClean); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	st.Broker.Cluster().ApplyRetention()
	out, err = check(false)
	if err != nil || line(out, pipelines.TopicTelemetryRaw) == "" || !strings.HasSuffix(line(out, pipelines.TopicTelemetryRaw), " gone") ||
		!strings.HasSuffix(line(out, pipelines.TopicTelemetryClean), " gone") ||
		!strings.Contains(line(out, pipelines.TopicScores), " shredded (") ||
		!strings.Contains(line(out, pipelines.TopicRedemptionStatus), " shredded (") {
		t.Fatalf("erasure-check after retention: %v\n%s", err, out)
	}
	t.Log(out)
}
