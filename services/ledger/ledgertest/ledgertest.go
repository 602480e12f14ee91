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
	"errors"
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
	if len(s) == 0 || s[len(s)-1] == nil {
		return nil, nil
	}
	b := *s[len(s)-1]
	return &b, nil
}

// Blocks calls fn with a copy of every block, at offsets 0, 1, ...; a nil
// block is a record that does not decode.
func (s Blocks) Blocks(ctx context.Context, fn func(ledger.Record) error) error {
	for i, b := range s {
		rec := ledger.Record{Offset: int64(i), Err: errNotABlock}
		if b != nil {
			cp := *b
			rec.Block, rec.Err = &cp, nil
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

var errNotABlock = errors.New("not a block (test record)")

// Export is the export file of blocks.
func Export(t testing.TB, blocks []*ledger.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ledger.Export(context.Background(), Blocks(blocks), nil, &buf, nil); err != nil {
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

// Poisoned is a book published with records among its blocks that every
// reader must skip: the attacks of docs/ledger.md, "A bad block".
type Poisoned struct {
	// Genuine is the book: SmallBook's 3 blocks (heights 0-2), then a
	// debit block (3) and an adjustment block (4), all signed by the key.
	Genuine []*ledger.Block
	// Records is the published sequence: the genuine blocks with bad ones
	// among them; nil stands for a record that does not decode (a
	// topic's test produces garbage bytes there).
	Records []*ledger.Block
	// Reasons is the reason of each record, "" for a genuine block
	// applied there.
	Reasons []ledger.Reason
	// Writer is the book that appended Genuine, as the ledger writer
	// holds it (its last blocks can be undone).
	Writer *ledger.Book
	// Forger signs with another key (Key(66)) under the same origin.
	Forger *ledger.Signer
}

// Poison builds the poisoned book signed by s: a duplicate of block 1, a
// forged block at the next height (3), the genuine block 4 before 3 (out
// of order), garbage, block 3's signed header with other entries, another
// header signed by the key at height 2 (a fork), then blocks 3 and 4,
// which readers apply.
func Poison(t testing.TB, s *ledger.Signer) Poisoned {
	t.Helper()
	book, genuine := SmallBook(t, s)
	for i, id := range []string{"req-3", "req-4"} {
		blocks, _, _, err := book.Append(ledger.Release{TimestampMs: 1_800_000_001_000 + int64(i), Clock: ledger.ClockWall, Entries: []ledger.Entry{
			{Kind: ledger.KindAdjustment, ID: id, Account: "acct-3", VehicleID: "v3", Amount: int64(10 + i), Reason: "goodwill", RequestedAtMs: 1_800_000_000_000},
		}}, 3, s)
		if err != nil {
			t.Fatal(err)
		}
		genuine = append(genuine, blocks...)
	}
	// A block at height 3 that extends the book, signed by another key.
	forger, _ := ledger.NewSigner(s.Origin(), Key(66))
	fb, _ := SmallBook(t, s)
	forged, _, _, err := fb.Append(ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindAdjustment, ID: "gift", Account: "mallory", VehicleID: "v9", Amount: 1_000_000, Reason: "bonus", RequestedAtMs: 1_900_000_000_000},
	}}, 3, forger)
	if err != nil {
		t.Fatal(err)
	}
	// Block 3's signed header with other entries.
	badEntries := *genuine[3]
	other, err := (&ledger.Entry{Kind: ledger.KindAdjustment, ID: "req-3", Account: "mallory", VehicleID: "v3", Amount: 10_000, Reason: "goodwill", RequestedAtMs: 1_800_000_000_000}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	badEntries.Entries = [][]byte{other}
	// Another header at height 2, signed by the key.
	fork := *genuine[2]
	fork.Header.TimestampMs++
	if fork.Signature, fork.Checkpoint, err = s.Sign(&fork.Header); err != nil {
		t.Fatal(err)
	}
	dup := *genuine[1]
	return Poisoned{
		Genuine: genuine, Writer: book, Forger: forger,
		Records: []*ledger.Block{genuine[0], genuine[1], &dup, genuine[2], forged[0], genuine[4], nil, &badEntries, &fork, genuine[3], genuine[4]},
		Reasons: []ledger.Reason{"", "", ledger.ReasonDuplicate, "", ledger.ReasonForged, ledger.ReasonOutOfOrder, ledger.ReasonUndecodable,
			ledger.ReasonBadEntries, ledger.ReasonFork, "", ""},
	}
}
