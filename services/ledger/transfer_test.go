package ledger_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
)

const (
	tid1 = "0000000000000000000000000000000a"
	tid2 = "00000000000000000000000000000b0b"
)

// TestTransferGolden pins the canonical bytes of a kind 5 entry
// (docs/ledger.md "Transfers").
func TestTransferGolden(t *testing.T) {
	e := ledger.Entry{Kind: ledger.KindTransfer, ID: tid2, Account: "a", CounterAccount: "bc", Amount: 5,
		TransferFlags: ledger.TransferPostPending | ledger.TransferLinked, Ref: tid1, RequestedAtMs: 2}
	raw, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "01 05 00000020 " + fmt.Sprintf("%x", tid2) + " 00000001 61 00000002 6263 0000000000000005 0000000000000005 00000020 " +
		fmt.Sprintf("%x", tid1) + " 0000000000000000 0000000000000002"
	if got := fmt.Sprintf("%x", raw); got != strings.ReplaceAll(want, " ", "") {
		t.Errorf("encoding\n%s, want\n%s", got, strings.ReplaceAll(want, " ", ""))
	}
	back, err := ledger.DecodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.CounterAccount != "bc" || back.TransferFlags != e.TransferFlags || back.Ref != tid1 || back.Amount != 5 || back.Account != "a" {
		t.Errorf("decoded %+v", back)
	}
	if e.Delta() != -5 || e.Key() != "a" {
		t.Errorf("delta %d key %q, want -5, a", e.Delta(), e.Key())
	}
}

func TestTransferValidate(t *testing.T) {
	ok := ledger.Entry{Kind: ledger.KindTransfer, ID: tid1, Account: "a", CounterAccount: "b", Amount: 1}
	for _, c := range []struct {
		name string
		edit func(e *ledger.Entry)
		want string // "" = valid
	}{
		{"single", func(e *ledger.Entry) {}, ""},
		{"pending with timeout", func(e *ledger.Entry) { e.TransferFlags, e.TimeoutMs = ledger.TransferPending, 1000 }, ""},
		{"post", func(e *ledger.Entry) { e.TransferFlags, e.Ref = ledger.TransferPostPending, tid2 }, ""},
		{"void linked", func(e *ledger.Entry) { e.TransferFlags, e.Ref = ledger.TransferVoidPending|ledger.TransferLinked, tid2 }, ""},
		{"expire", func(e *ledger.Entry) {
			e.ID, e.TransferFlags, e.Ref = ledger.ExpirePrefix+tid2, ledger.TransferExpirePending, tid2
		}, ""},
		{"expire wrong id", func(e *ledger.Entry) { e.TransferFlags, e.Ref = ledger.TransferExpirePending, tid2 }, "expiry id"},
		{"expire linked", func(e *ledger.Entry) {
			e.ID, e.TransferFlags, e.Ref = ledger.ExpirePrefix+tid2, ledger.TransferExpirePending|ledger.TransferLinked, tid2
		}, "never linked"},
		{"uppercase id", func(e *ledger.Entry) { e.ID = strings.ToUpper(tid2) }, "hex"},
		{"short id", func(e *ledger.Entry) { e.ID = "abc" }, "hex"},
		{"zero id", func(e *ledger.Entry) { e.ID = strings.Repeat("0", 32) }, "reserved"},
		{"no credit account", func(e *ledger.Entry) { e.CounterAccount = "" }, "account"},
		{"to itself", func(e *ledger.Entry) { e.CounterAccount = "a" }, "itself"},
		{"zero amount", func(e *ledger.Entry) { e.Amount = 0 }, "amount"},
		{"negative amount", func(e *ledger.Entry) { e.Amount = -1 }, "amount"},
		{"two phases", func(e *ledger.Entry) { e.TransferFlags = ledger.TransferPending | ledger.TransferVoidPending }, "phase"},
		{"unknown flag", func(e *ledger.Entry) { e.TransferFlags = 1 << 9 }, "unknown"},
		{"post without pending id", func(e *ledger.Entry) { e.TransferFlags = ledger.TransferPostPending }, "pending id"},
		{"pending id on single", func(e *ledger.Entry) { e.Ref = tid2 }, "pending id"},
		{"timeout on single", func(e *ledger.Entry) { e.TimeoutMs = 5 }, "timeout"},
		{"negative timeout", func(e *ledger.Entry) { e.TransferFlags, e.TimeoutMs = ledger.TransferPending, -1 }, "timeout"},
		{"reason", func(e *ledger.Entry) { e.Reason = "x" }, "reason"},
		{"vehicle", func(e *ledger.Entry) { e.VehicleID = "v" }, "vehicle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := ok
			c.edit(&e)
			raw, err := e.Encode()
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid transfer refused: %v", err)
				}
				if back, err := ledger.DecodeEntry(raw); err != nil || back.ID != e.ID || back.TransferFlags != e.TransferFlags {
					t.Fatalf("round trip: %+v, %v", back, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ledger.ErrEntry) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want ErrEntry mentioning %q", err, c.want)
			}
		})
	}
	// Transfer fields on another kind are refused, not dropped.
	d := ledger.Entry{Kind: ledger.KindDebit, ID: "r", Account: "a", Amount: 1, CounterAccount: "b"}
	if _, err := d.Encode(); err == nil {
		t.Error("debit with a counter account encoded")
	}
}

func TestTransferFlagsString(t *testing.T) {
	for f, want := range map[ledger.TransferFlags]string{
		0: "single", ledger.TransferPending: "pending", ledger.TransferLinked | ledger.TransferPostPending: "linked|post_pending",
		1 << 10: "0x400",
	} {
		if got := f.String(); got != want {
			t.Errorf("%d: %q, want %q", f, got, want)
		}
	}
}
