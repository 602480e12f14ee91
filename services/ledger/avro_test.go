package ledger_test

import (
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

func TestCreditFromScoreRejectsMismatchedID(t *testing.T) {
	s := ledgertest.Score("veh-1", 3, 10)
	if _, err := ledger.CreditFromScore(s); err != nil {
		t.Fatal(err)
	}
	s.ID = "veh-2/1970-01-04"
	if _, err := ledger.CreditFromScore(s); err == nil {
		t.Error("score id of another vehicle accepted")
	}
}
