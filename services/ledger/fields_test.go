package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestStringFieldsChecked: every string field of an entry, and each flag,
// is refused when it is not UTF-8 or longer than 64 KiB, with the reason,
// and accepted when it is non-ASCII UTF-8 of the longest allowed length.
func TestStringFieldsChecked(t *testing.T) {
	fields := map[string]func(e *ledger.Entry, s string){
		"id": func(e *ledger.Entry, s string) { e.ID = s }, "vehicle": func(e *ledger.Entry, s string) { e.VehicleID = s },
		"account": func(e *ledger.Entry, s string) { e.Account = s }, "date": func(e *ledger.Entry, s string) { e.Date = s },
		"tz": func(e *ledger.Entry, s string) { e.TZ = s }, "config": func(e *ledger.Entry, s string) { e.ConfigVersion = s },
		"reason": func(e *ledger.Entry, s string) { e.Reason = s }, "partner": func(e *ledger.Entry, s string) { e.Partner = s },
		"item": func(e *ledger.Entry, s string) { e.Item = s }, "redemption": func(e *ledger.Entry, s string) { e.RedemptionID = s },
		"ref": func(e *ledger.Entry, s string) { e.Ref = s }, "counter": func(e *ledger.Entry, s string) { e.CounterAccount = s },
		"campaign": func(e *ledger.Entry, s string) { e.Campaign = s }, "action": func(e *ledger.Entry, s string) { e.Action = s },
		"flag": func(e *ledger.Entry, s string) { e.Flags = []string{s} },
	}
	for name, set := range fields {
		for _, tc := range []struct {
			what, value, err string
		}{
			{"not UTF-8", "ok\xff", "not UTF-8"},
			{"not UTF-8 after ASCII", strings.Repeat("a", 20) + "\xc3(", "not UTF-8"},
			{"too long", strings.Repeat("a", 1<<16+1), "longer than"},
		} {
			e := ledgertest.Credit("v1", 2, 10)
			set(&e, tc.value)
			if err := e.Validate(); !errors.Is(err, ledger.ErrEntry) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: %v, want ErrEntry saying %q", name, tc.what, err, tc.err)
			}
		}
		// Non-ASCII UTF-8 up to the limit passes the string check (the
		// kind's own rules may still refuse the entry, not for this).
		e := ledgertest.Credit("v1", 2, 10)
		set(&e, strings.Repeat("é", 1<<15))
		if err := e.Validate(); err != nil && (strings.Contains(err.Error(), "UTF-8") || strings.Contains(err.Error(), "longer")) {
			t.Errorf("%s: valid UTF-8 of 64 KiB refused: %v", name, err)
		}
	}
}
