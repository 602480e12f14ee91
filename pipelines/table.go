package pipelines

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Table follows a compacted topic from its start with a direct (non-group)
// consumer, read_committed, and keeps the latest value of every key (a nil
// value deletes the key). Every replica of a service sees the whole table.
//
// NewTable starts one goroutine that follows the topic; it stops when the ctx
// given to NewTable is done or Close is called, and Close waits for it.
type Table struct {
	topic string
	cl    *kgo.Client

	mu   sync.RWMutex
	data map[string][]byte

	target map[int32]int64 // end offsets seen at start
	caught chan struct{}   // closed once every partition reached target

	cancel context.CancelFunc
	done   chan struct{}
	err    error // the follower's fatal error, set before done is closed
}

// NewTable starts following topic.
func NewTable(ctx context.Context, cfg Config, topic string) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cl, err := kgo.NewClient(append(cfg.baseOpts(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // to know our position past txn markers
	)...)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", topic, err)
	}
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("table %s: end offsets: %w", topic, err)
	}
	t := &Table{
		topic:  topic,
		cl:     cl,
		data:   make(map[string][]byte),
		target: make(map[int32]int64),
		caught: make(chan struct{}),
		done:   make(chan struct{}),
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			t.target[o.Partition] = o.Offset
		}
	})
	if len(t.target) == 0 {
		close(t.caught)
	}
	ctx, t.cancel = context.WithCancel(ctx)
	go t.follow(ctx)
	return t, nil
}

func (t *Table) follow(ctx context.Context) {
	defer close(t.done)
	pos := make(map[int32]int64)
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		var fatal error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) {
				fatal = err
			}
		})
		if fatal != nil {
			t.err = fmt.Errorf("table %s: %w", t.topic, fatal)
			return
		}
		t.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			if r.Value == nil {
				delete(t.data, string(r.Key))
			} else {
				t.data[string(r.Key)] = r.Value
			}
		})
		t.mu.Unlock()
		if len(t.target) > 0 {
			caught := true
			for p, end := range t.target {
				if pos[p] < end {
					caught = false
					break
				}
			}
			if caught {
				close(t.caught)
				t.target = nil
			}
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
// offsets it saw when it was created, or ctx's error.
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
	t.cl.Close()
	if t.err != nil && !errors.Is(t.err, context.Canceled) {
		return t.err
	}
	return nil
}
