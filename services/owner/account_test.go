package owner_test

import (
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/services/owner"
)

// testAccountEntries: owner-1's two debits (leaves the ledger reader has
// not reached: listed with a proof_error), newest first; not the credits
// of its vehicles; another owner is refused, a malformed id is 400.
func testAccountEntries(t *testing.T, e env, conn driver.Conn) {
	at := now.Add(-time.Hour)
	var rows [][]any
	for i, amount := range []int64{-50, -300} {
		leaf := uint64(1000 + i)
		rows = append(rows, []any{leaf, uint64(90), leaf + 1, at, "debit", "red-" + string(rune('a'+i)), "", "owner-1", amount,
			(*time.Time)(nil), "", "redemption", "red-" + string(rune('a'+i)), "", "00", "x", "e", int32(0), int64(leaf)})
	}
	send(t, conn, ledgerInsert, rows)
	var got owner.AccountEntries
	if code := e.get(t, "/v1/accounts/owner-1/entries", &got); code != 200 {
		t.Fatalf("status %d", code)
	}
	if got.Account != "owner-1" || got.VehicleID != "" || len(got.Entries) != 2 || got.Entries[0].LeafIndex != 1001 ||
		got.Entries[0].Delta != -300 || got.Entries[1].Delta != -50 || got.Entries[0].Kind != "debit" || got.Entries[0].ProofError == "" {
		t.Errorf("owner-1's entries: %+v", got)
	}
	owner2 := e
	owner2.tok = testAuth(t).owner2
	if code := owner2.get(t, "/v1/accounts/owner-1/entries", nil); code != 403 {
		t.Errorf("owner-2 reading owner-1's entries: %d, want 403", code)
	}
	if code := e.get(t, "/v1/accounts/no%20such/entries", nil); code != 400 {
		t.Errorf("malformed owner: %d, want 400", code)
	}
}
