package ledger

import (
	"errors"
	"fmt"
	"strings"
)

// TransferFlags are the flags of a transfer entry (kind 5), a bit set
// encoded as an 8-byte big-endian integer (docs/ledger.md "Transfers").
// At most one of the phase bits (Pending, PostPending, VoidPending,
// ExpirePending) is set; none is a single-phase transfer that moves the
// points at once.
type TransferFlags uint64

// Transfer flags, after TigerBeetle's (docs/economy.md).
const (
	// TransferLinked chains the transfer to the next one of its batch: the
	// chain succeeds or fails as a whole. Recorded for the audit trail; a
	// failed chain has no entries at all.
	TransferLinked TransferFlags = 1 << 0
	// TransferPending reserves the amount on the debit account until a
	// post, a void or the timeout (TimeoutMs of ledger time) resolves it.
	TransferPending TransferFlags = 1 << 1
	// TransferPostPending moves the points of the pending transfer named
	// by Ref.
	TransferPostPending TransferFlags = 1 << 2
	// TransferVoidPending releases the pending transfer named by Ref.
	TransferVoidPending TransferFlags = 1 << 3
	// TransferExpirePending releases the pending transfer named by Ref
	// because its timeout passed in ledger time; only settlement writes
	// it, in a block stamped at or after the deadline.
	TransferExpirePending TransferFlags = 1 << 4

	transferPhases = TransferPending | TransferPostPending | TransferVoidPending | TransferExpirePending
	transferKnown  = TransferLinked | transferPhases
)

// Moves reports whether an entry with these flags moves points from the
// debit account to the credit account: a single-phase transfer or a post.
func (f TransferFlags) Moves() bool {
	p := f & transferPhases
	return p == 0 || p == TransferPostPending
}

// Resolves reports whether the flags resolve a pending transfer (post,
// void or expire).
func (f TransferFlags) Resolves() bool {
	return f&(TransferPostPending|TransferVoidPending|TransferExpirePending) != 0
}

// String lists the flags by name, joined by "|" ("single" for none).
func (f TransferFlags) String() string {
	var names []string
	for _, x := range [...]struct {
		f    TransferFlags
		name string
	}{{TransferLinked, "linked"}, {TransferPending, "pending"}, {TransferPostPending, "post_pending"},
		{TransferVoidPending, "void_pending"}, {TransferExpirePending, "expire_pending"}} {
		if f&x.f != 0 {
			names = append(names, x.name)
		}
	}
	if rest := f &^ transferKnown; rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint64(rest)))
	}
	if len(names) == 0 {
		return "single"
	}
	return strings.Join(names, "|")
}

// ExpirePrefix starts the id of the entry that expires a pending transfer:
// "expire/<pending id>".
const ExpirePrefix = "expire/"

// ValidTransferID reports whether s is a client-chosen transfer id: 32
// lowercase hexadecimal digits (128 bits), not all zero.
func ValidTransferID(s string) error {
	if len(s) != 32 {
		return fmt.Errorf("transfer id %q: want 32 lowercase hex digits", s)
	}
	zero := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("transfer id %q: want 32 lowercase hex digits", s)
		}
		zero = zero && c == '0'
	}
	if zero {
		return errors.New("transfer id 0 is reserved")
	}
	return nil
}

// validateTransfer checks a kind 5 entry.
func (e *Entry) validateTransfer() error {
	f := e.TransferFlags
	if rest := f &^ transferKnown; rest != 0 {
		return fmt.Errorf("unknown transfer flags 0x%x", uint64(rest))
	}
	if p := f & transferPhases; p&(p-1) != 0 {
		return fmt.Errorf("transfer flags %s: more than one phase", f)
	}
	if f&TransferExpirePending != 0 {
		if e.ID != ExpirePrefix+e.Ref {
			return fmt.Errorf("expiry id %q, want %q", e.ID, ExpirePrefix+e.Ref)
		}
		if f&TransferLinked != 0 {
			return errors.New("an expiry is never linked")
		}
	} else if err := ValidTransferID(e.ID); err != nil {
		return err
	}
	if e.Account == "" || e.CounterAccount == "" {
		return errors.New("transfer without debit or credit account")
	}
	if e.Account == e.CounterAccount {
		return fmt.Errorf("transfer from %q to itself", e.Account)
	}
	if e.Amount <= 0 {
		return fmt.Errorf("transfer amount %d, want > 0", e.Amount)
	}
	if f.Resolves() {
		if err := ValidTransferID(e.Ref); err != nil {
			return fmt.Errorf("pending id: %w", err)
		}
	} else if e.Ref != "" {
		return errors.New("pending id set without post, void or expire")
	}
	if e.TimeoutMs < 0 || e.TimeoutMs > 0 && f&TransferPending == 0 {
		return fmt.Errorf("timeout %d ms: only a pending transfer has one, >= 0", e.TimeoutMs)
	}
	if e.VehicleID != "" || e.Reason != "" || e.Partner != "" || e.Item != "" || e.RedemptionID != "" {
		return errors.New("vehicle, reason, partner, item or redemption set on a transfer")
	}
	return nil
}
