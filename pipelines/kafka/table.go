package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/minecart/minecart/pipelines"
)

// Table follows a compacted topic from its start (Reader.Follow) and keeps
// the latest value of every key (a nil value deletes the key), except the
// runtime's reserved applied-offset records of a stage's changelog
// (AppliedKeyPrefix), which it never shows. Every replica of a service sees
// the whole table.
//
// NewTable starts one goroutine that follows the topic; it stops when the ctx
// given to NewTable is done or Close is called, and Close waits for it.
type Table struct {
	topic string
	rd    *Reader

	mu      sync.RWMutex
	data    map[string][]byte
	changed chan struct{} // closed (and replaced) at every change, for Wait

	caught chan struct{} // closed once every partition reached its end at start

	cancel context.CancelFunc
	done   chan struct{}
	err    error // the follower's fatal error, set before done is closed
}

// NewTable lists topic's end offsets, then starts following it. A topic
// that does not exist or that the client may not read is an error here,
// not a table that stays empty.
func NewTable(ctx context.Context, cfg Config, topic string) (*Table, error) {
	rd, err := NewReader(cfg)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", topic, err)
	}
	ends, err := rd.Ends(ctx, topic)
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("table %s: %w", topic, err)
	}
	t := &Table{
		topic:   topic,
		rd:      rd,
		data:    make(map[string][]byte),
		changed: make(chan struct{}),
		caught:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	ctx, t.cancel = context.WithCancel(ctx)
	go func() {
		defer close(t.done)
		if err := rd.follow(ctx, topic, ends, t.put, func() { close(t.caught) }); err != nil {
			t.err = fmt.Errorf("table %s: %w", topic, err)
		}
	}()
	return t, nil
}

func (t *Table) put(r pipelines.Record) error {
	if isApplied(r.Key) {
		// The runtime's own bookkeeping in a stage's changelog
		// (AppliedKeyPrefix), not a key of the table.
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Value == nil {
		delete(t.data, string(r.Key))
	} else {
		t.data[string(r.Key)] = r.Value
	}
	close(t.changed)
	t.changed = make(chan struct{})
	return nil
}

// Wait returns once ok accepts key's latest value (present false: no such
// key), or ctx's error; for a writer that waits until the table shows its
// own write. ok runs with the table read-locked: it must not call the table.
func (t *Table) Wait(ctx context.Context, key string, ok func(value []byte, present bool) bool) error {
	for {
		t.mu.RLock()
		v, present := t.data[key]
		done, changed := ok(v, present), t.changed
		t.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("table %s, key %q: %w", t.topic, key, ctx.Err())
		case <-t.done:
			if t.err != nil {
				return t.err
			}
			return fmt.Errorf("table %s stopped", t.topic)
		case <-changed:
		}
	}
}

// Get returns the latest value of key. The slice must not be modified.
func (t *Table) Get(key string) ([]byte, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.data[key]
	return v, ok
}

// Len returns the number of keys.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.data)
}

// Range calls fn for every key and value (in no order) until fn returns
// false. The table is read-locked meanwhile: fn must not call the table.
func (t *Table) Range(fn func(key string, value []byte) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k, v := range t.data {
		if !fn(k, v) {
			return
		}
	}
}

// WaitCaught returns once the table has read the topic up to the end
// offsets it had when the table was created, or ctx's error.
func (t *Table) WaitCaught(ctx context.Context) error {
	select {
	case <-t.caught:
		return nil
	case <-t.done:
		select {
		case <-t.caught:
			return nil
		default:
		}
		if t.err != nil {
			return t.err
		}
		return fmt.Errorf("table %s: stopped before catching up", t.topic)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops following the topic and closes the client.
func (t *Table) Close() error {
	t.cancel()
	<-t.done
	t.rd.Close()
	if t.err != nil && !errors.Is(t.err, context.Canceled) {
		return t.err
	}
	return nil
}
