// Package ledgertest holds the ledger's test fixtures, shared by the tests
// of the ledger packages and their callers: fixed keys, a small signed
// book, a BlockSource over a slice, and daily scores and watermarks as the
// scoring stage writes them.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// Origin is the log origin of the test books.
const Origin = "minecart.test/ledger"

// DayMs is a day in milliseconds.
const DayMs = 86_400_000

// Key is a fixed Ed25519 key: the same seed, the same key.
func Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// Credit is the credit of vehicle for day (of November 2026).
func Credit(vehicle string, day int, points int64) ledger.Entry {
	date := fmt.Sprintf("2026-11-%02d", day)
	return ledger.Entry{
		Kind: ledger.KindCredit, ID: vehicle + "/" + date, VehicleID: vehicle, Date: date, TZ: "Europe/Paris",
		WindowEndMs: int64(day) * DayMs, ConfigVersion: "v1", Points: points, Score: 0.75,
		EventsHash: bytes.Repeat([]byte{byte(day)}, 32), Flags: []string{"capped"},
	}
}

// SmallBook builds a book of 3 blocks signed by s: 5 credits split 3+2,
// then a debit and an adjustment.
func SmallBook(t testing.TB, s *ledger.Signer) (*ledger.Book, []*ledger.Block) {
	t.Helper()
	b := ledger.NewBook()
	var all []*ledger.Block
	rel := ledger.Release{TimestampMs: 2 * DayMs, Clock: ledger.ClockEvent}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		rel.Entries = append(rel.Entries, Credit(v, 2, 100))
	}
	blocks, _, _, err := b.Append(rel, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, blocks...)
	blocks, _, _, err = b.Append(ledger.Release{TimestampMs: 1_800_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindDebit, ID: "req-1", Account: "acct-1", VehicleID: "v1", Amount: 30, Reason: "redemption", Partner: "fuelco", Item: "coffee", RedemptionID: "r-1", RequestedAtMs: 1_799_999_999_000},
		{Kind: ledger.KindAdjustment, ID: "req-2", Account: "acct-2", VehicleID: "v2", Amount: -5, Reason: "late data", Ref: "v2/2026-11-02", RequestedAtMs: 1_799_999_999_500},
	}}, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	return b, append(all, blocks...)
}

// Blocks is a published book in memory: a ledger.BlockSource and
// ledger.LastBlockReader handing out copies of its blocks.
type Blocks []*ledger.Block

// LastBlock returns a copy of the last block, or nil.
func (s Blocks) LastBlock(context.Context) (*ledger.Block, error) {
	if len(s) == 0 {
		return nil, nil
	}
	b := *s[len(s)-1]
	return &b, nil
}

// Blocks calls fn with a copy of every block.
func (s Blocks) Blocks(ctx context.Context, fn func(*ledger.Block) error) error {
	for _, b := range s {
		cp := *b
		if err := fn(&cp); err != nil {
			return err
		}
	}
	return nil
}

// Export is the export file of blocks.
func Export(t testing.TB, blocks []*ledger.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ledger.Export(context.Background(), Blocks(blocks), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Score is the daily score of vehicle v on day d (days since 1970-01-01,
// UTC) with points.
func Score(v string, d int, points int64) *avro.DailyScore {
	start := time.UnixMilli(int64(d) * DayMs).UTC()
	date := start.Format("2006-01-02")
	eh := sha256.Sum256([]byte(v + date))
	return &avro.DailyScore{
		ID: v + "/" + date, VehicleID: v, DeviceID: "dev-" + v, Date: date, TZ: "UTC",
		WindowStart: start, WindowEnd: start.Add(24 * time.Hour), ConfigVersion: "rules-1",
		DistanceKm: 12.5, GpsKm: 12.5, OdometerKm: 12.4, DrivingS: 1800, HarshBrake: 1, Events: 900,
		Score: 87.5, Points: points, Flags: []string{"too_regular", "capped"}, FlagReasons: []string{"a", "b"},
		EventsHash: eh[:],
	}
}

// Watermark is the mark of scoring task task of tasks, closed through
// throughMs.
func Watermark(task, tasks int, throughMs int64) *avro.Watermark {
	return &avro.Watermark{Task: int32(task), Tasks: int32(tasks), ClosedThroughMs: time.UnixMilli(throughMs).UTC()}
}
