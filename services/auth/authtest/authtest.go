// Package authtest holds test fixtures for the callers of services/auth.
package authtest

import (
	"context"
	"sync"

	"github.com/minecart/minecart/pipelines"
)

// MemTopic is a compacted topic held in memory, for unit tests of code
// that reads credentials or bindings (auth.Config's Credentials): a
// ProduceSync of a nil value is a tombstone, after which Get finds no
// value. The services/stack tests run the same code on the real broker.
type MemTopic struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Get returns the latest value of key.
func (t *MemTopic) Get(key string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[key]
	return v, ok && v != nil
}

// ProduceSync stores value as key's latest value (the topic is ignored).
func (t *MemTopic) ProduceSync(_ context.Context, _ string, key, value []byte, _ ...pipelines.Header) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string][]byte{}
	}
	t.m[string(key)] = value
	return nil
}
