package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
)

// The end-to-end tests run the whole pipeline in this process on a real
// kfake broker over TCP (random ports), drive a small simulated fleet
// through the gateway over HTTP, and read the outcome back from Kafka (and
// ClickHouse).

const e2eVehicles = 12

// twoDays is the end-to-end tests' two-day fleet (seed 7, e2eVehicles
// vehicles from 2026-11-02).
func twoDays(t *testing.T) *fleet.Sim {
	t.Helper()
	sim, err := fleet.New(fleet.Config{Seed: 7, Vehicles: e2eVehicles, Days: 2, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

func testSim(t *testing.T) *fleet.Sim {
	t.Helper()
	sim, err := fleet.New(fleet.Config{Seed: 7, Vehicles: e2eVehicles, Days: 1,
		Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func startStack(t *testing.T, ctx context.Context, dir, dsn string, readDSN ...string) *Stack {
	t.Helper()
	st, err := Start(ctx, Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClickHouseDSN: dsn, ClickHouseReadDSN: strings.Join(readDSN, ""), SessionTimeout: time.Second, Logger: testLogger(t),
		PseudonymSeed: pseudonym.SimulationSeed(7)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// outcome is what a run must reproduce exactly.
type outcome struct {
	root     string
	treeSize uint64
	scores   int
	points   int64
	balances string // every account's balance, sorted
}

func settle(t *testing.T, ctx context.Context, st *Stack, sim *fleet.Sim) outcome {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := st.WaitSettled(wctx, sim.End(), 3*time.Second, nil); err != nil {
		t.Fatalf("settling: %v", err)
	}
	sum, err := st.Summary(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var bals []string
	for _, b := range sum.TopBalances {
		bals = append(bals, fmt.Sprintf("%s=%d", b.Owner, b.Balance))
	}
	sort.Strings(bals)
	return outcome{root: sum.Root, treeSize: sum.TreeSize, scores: sum.Scores, points: sum.PointsScored, balances: strings.Join(bals, " ")}
}

// send uploads the fleet from chunk from on, stopping after chunk until
// (-1: the end), and returns the next chunk to send.
func send(t *testing.T, ctx context.Context, st *Stack, sim *fleet.Sim, from, until int) (loadtest.Report, int) {
	t.Helper()
	next := from
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rep, err := st.SendFleet(ctx, sim, from, loadtest.SenderConfig{}, func(k int, _ loadtest.Report) error {
		next = k + 1
		if k == until {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	if rep.Failed > 0 || rep.Rejected > 0 {
		t.Fatalf("gateway refused simulated events: %s", rep)
	}
	return rep, next
}

// TestEndToEndDeterministicAcrossRestart runs the same simulated fleet
// twice: once straight through, once with the whole pipeline stopped in the
// middle of the day and started again on the same data directory, the fleet
// resuming with the last chunk it had sent (re-uploaded: ingest must drop
// the repeats). Both must
// give the same ledger root, the same scores and the same balances: no
// reward lost, none credited twice.
func TestEndToEndDeterministicAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	sim := testSim(t)

	// Straight through.
	dirA := t.TempDir()
	st := startStack(t, ctx, dirA, "")
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	repA, _ := send(t, ctx, st, sim, 0, -1)
	a := settle(t, ctx, st, sim)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("run A: %d events, %d scores, %d points, %d entries, root %s", repA.Events, a.scores, a.points, a.treeSize, a.root)
	if a.scores != e2eVehicles*1 {
		t.Fatalf("scores = %d, want one per vehicle-day (%d)", a.scores, e2eVehicles)
	}
	if a.points <= 0 || a.treeSize == 0 || len(a.root) != 64 {
		t.Fatalf("nothing credited: %+v", a)
	}

	// Stopped in the middle of the day, then started again.
	dirB := t.TempDir()
	st = startStack(t, ctx, dirB, "")
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range sim.Chunks() {
		n++
	}
	_, next := send(t, ctx, st, sim, 0, n/2)
	time.Sleep(500 * time.Millisecond) // let the stages take some of it
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = startStack(t, ctx, dirB, "")
	defer st.Close()
	send(t, ctx, st, sim, next-1, -1)
	b := settle(t, ctx, st, sim)
	if a != b {
		t.Fatalf("a restart changed the outcome:\nstraight %+v\nrestart  %+v", a, b)
	}
}

// TestEndToEndDeadLetters puts a corrupt record on every stage's input
// topic among the fleet's good records: each lands in the dead-letter topic
// with its reason and source, and the good records are all processed.
func TestEndToEndDeadLetters(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	sim := testSim(t)
	st := startStack(t, ctx, t.TempDir(), "")
	defer st.Close()
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	corrupt := []string{pipelines.TopicTelemetryRaw, pipelines.TopicTelemetryClean, pipelines.TopicScores,
		pipelines.TopicLedgerRequests, pipelines.TopicRedemptions}
	for _, topic := range corrupt {
		if err := st.Producer.ProduceSync(ctx, topic, []byte("corrupt"), []byte("\xc3\x01not avro at all")); err != nil {
			t.Fatal(err)
		}
	}
	send(t, ctx, st, sim, 0, -1)
	out := settle(t, ctx, st, sim)
	if out.scores != e2eVehicles {
		t.Fatalf("scores = %d, want %d: good records beside the corrupt ones were lost", out.scores, e2eVehicles)
	}
	got := map[string]string{}
	err := st.scan(ctx, pipelines.TopicDeadLetter, func(r pipelines.Record) error {
		var d avro.DeadLetter
		if err := st.Serde.Unmarshal(r.Value, &d); err != nil {
			return err
		}
		if string(d.Value) == "\xc3\x01not avro at all" {
			got[d.SourceTopic] = d.ReasonCode
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range corrupt {
		if got[topic] == "" {
			t.Errorf("corrupt record on %s not dead-lettered (dead letters: %v)", topic, got)
		}
	}
	// The summary counts them by stage and reason, every one decoded.
	sum, err := st.Summary(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, n := range sum.DeadByReason {
		counted += n
	}
	if sum.DeadLetters < int64(len(corrupt)) || counted != sum.DeadLetters || sum.DeadByReason["undecodable"] != 0 {
		t.Errorf("summary: %d dead letters by reason %v, want at least %d, all decoded", sum.DeadLetters, sum.DeadByReason, len(corrupt))
	}
}

// TestEndToEndFirehose lands the fleet's clean telemetry in the embedded
// ClickHouse: every event exactly once (count and a checksum of the event
// ids against the clean topic).
func TestEndToEndFirehose(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	sim := testSim(t)
	st := startStack(t, ctx, t.TempDir(), ch.WriterDSN(), ch.AnalystDSN())
	defer st.Close()
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, st, sim, 0, -1)
	settle(t, ctx, st, sim)

	var want int
	var wantSum [32]byte
	ids := []string{}
	err := st.scan(ctx, pipelines.TopicTelemetryClean, func(r pipelines.Record) error {
		if pipelines.IsMark(&r) {
			return nil // the gateway's time marks: no row
		}
		m, err := st.Serde.DecodeAs(schemas.TelemetryEvent, r.Value)
		if err != nil {
			return err
		}
		ids = append(ids, m["device_id"].(string)+"/"+m["event_id"].(string))
		want++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	wantSum = sha256.Sum256([]byte(strings.Join(ids, "\n")))

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: ch.Analyst.Name, Password: ch.Analyst.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry FINAL").Scan(&got); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if int(got) != want || rows != got {
		t.Fatalf("ClickHouse has %d events (%d rows), the clean topic %d", got, rows, want)
	}
	var sumHex string
	q := "SELECT hex(SHA256(arrayStringConcat(arraySort(groupArray(concat(toString(device_id), '/', event_id))), '\n'))) FROM telemetry"
	if err := conn.QueryRow(ctx, q).Scan(&sumHex); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(sumHex, hex.EncodeToString(wantSum[:])) {
		t.Fatalf("checksum of event ids differs: ClickHouse %s, topic %x", sumHex, wantSum)
	}

	// The owner's view of a vehicle, over HTTP, from what landed.
	vin := sim.Vehicles()[0].VehicleID
	var pos struct {
		VehicleID string    `json:"vehicle_id"`
		Time      time.Time `json:"time"`
		Lat, Lon  float64
	}
	getJSON(t, "http://"+st.HTTPAddr()+"/v1/vehicles/"+vin+"/position", st.OperatorToken, http.StatusOK, &pos)
	var last time.Time
	if err := conn.QueryRow(ctx, "SELECT max(time) FROM telemetry WHERE vehicle_id = ?", vin).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if pos.VehicleID != vin || !pos.Time.Equal(last) || pos.Lat == 0 {
		t.Fatalf("position %+v, want the fix at %v", pos, last)
	}
	getJSON(t, "http://"+st.HTTPAddr()+"/v1/vehicles/NOSUCHVEHICLE0000/position", st.OperatorToken, http.StatusNotFound, nil)
	// The position came from the owner view, caught up on the same topic
	// (docs/owner-api.md); the unknown vehicle from ClickHouse.
	if hits := ownerViewCount(t, st, "hit"); hits < 1 {
		t.Errorf("owner view hits %v, want the position answered from the view", hits)
	}
}

// ownerViewCount is minecart_owner_view_requests_total{result} summed.
func ownerViewCount(t *testing.T, st *Stack, result string) float64 {
	t.Helper()
	mfs, err := st.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "minecart_owner_view_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// getJSON GETs url with the bearer token tok ("": none).
func getJSON(t *testing.T, url, tok string, status int, into any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, status)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, b)
		}
	}
}
