package settlement

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The changelog holds the book as one record per piece of state (key =
// Change.Key, value = JSON of the state, tombstone = deleted). It is
// settlement's private state, read back only by settlement, so it is JSON
// with its Go field names rather than a published Avro contract; the
// records other services read (status, orders, credits, statements) are
// Avro.

// EncodeChange returns the changelog value of a change (nil = tombstone).
func EncodeChange(c Change) ([]byte, error) {
	if c.Value == nil {
		return nil, nil
	}
	b, err := json.Marshal(c.Value)
	if err != nil {
		return nil, fmt.Errorf("changelog %s: %w", c.Key, err)
	}
	return b, nil
}

// Restore loads one changelog record into the book. Call Restored after
// the last one.
func (b *Book) Restore(key string, value []byte) error {
	var err error
	switch {
	case key == keyMeta:
		var m Meta
		if value != nil {
			err = json.Unmarshal(value, &m)
		}
		if err == nil {
			if m.Days == nil {
				m.Days = map[string]DayTotals{}
			}
			b.meta = m
		}
	case strings.HasPrefix(key, keyAccount):
		err = restore(b.accounts, key[len(keyAccount):], value)
	case strings.HasPrefix(key, keyBinding):
		err = restore(b.bindings, key[len(keyBinding):], value)
	case strings.HasPrefix(key, keyItem):
		err = restore(b.items, key[len(keyItem):], value)
	case strings.HasPrefix(key, keyRedemption):
		err = restore(b.redemptions, key[len(keyRedemption):], value)
	case strings.HasPrefix(key, keyTransfer):
		err = restore(b.transfers, key[len(keyTransfer):], value)
	default:
		return fmt.Errorf("changelog key %q: unknown prefix", key)
	}
	if err != nil {
		return fmt.Errorf("changelog %s: %w", key, err)
	}
	return nil
}

// restore loads one record of a map of the book (nil: deleted).
func restore[V any](m map[string]V, id string, value []byte) error {
	if value == nil {
		delete(m, id)
		return nil
	}
	var v V
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	m[id] = v
	return nil
}

// Restored rebuilds the indexes after the changelog was replayed.
func (b *Book) Restored() {
	b.pending = b.pending[:0]
	for id, r := range b.redemptions {
		if r.Status == StatusPending {
			b.pending = append(b.pending, id)
		}
	}
	slices.SortFunc(b.pending, func(x, y string) int {
		return cmp.Compare(b.redemptions[x].Seq, b.redemptions[y].Seq)
	})
	clear(b.openPending)
	for id, x := range b.transfers {
		if x.Pending == PendingOpen {
			b.openPending[id] = x.ExpiresAtMs
		}
	}
	b.indexExpiries()
}

// ReadTransfer reads a transfer's state (false: no such transfer).
func ReadTransfer(s StateReader, id string) (Transfer, bool, error) {
	v, ok := s.Get(TransferKey(id))
	if !ok || v == nil {
		return Transfer{}, false, nil
	}
	var x Transfer
	if err := json.Unmarshal(v, &x); err != nil {
		return x, false, fmt.Errorf("transfer state: %w", err)
	}
	return x, true, nil
}

// StateReader reads settlement's changelog by key: a table following
// pipelines.TopicSettlementLog (a *kafka.Table) implements it.
type StateReader interface {
	Get(key string) ([]byte, bool)
}

// ReadAccount reads an account's state (an account without a record is
// empty).
func ReadAccount(s StateReader, id string) (Account, error) {
	v, ok := s.Get(AccountKey(id))
	if !ok || v == nil {
		return Account{ID: id}, nil
	}
	return DecodeAccount(v)
}

// DecodeAccount decodes an account's changelog value.
func DecodeAccount(value []byte) (Account, error) {
	var a Account
	if err := json.Unmarshal(value, &a); err != nil {
		return a, fmt.Errorf("account state: %w", err)
	}
	return a, nil
}

// ReadRedemption reads a redemption's state (false: no such redemption).
func ReadRedemption(s StateReader, id string) (Redemption, bool, error) {
	v, ok := s.Get(RedemptionKey(id))
	if !ok || v == nil {
		return Redemption{}, false, nil
	}
	var r Redemption
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("redemption state: %w", err)
	}
	return r, true, nil
}
