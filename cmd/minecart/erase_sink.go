package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/sink"
)

// sinkWait is the erasure's wait for the ClickHouse sink: the last stable
// offsets its input topics had when the erasure began, and the reader
// that counts what the sink's group has not stored of them.
type sinkWait struct {
	rd   *kafka.Reader
	ends map[string]map[int32]int64
}

// startSinkWait notes the ends of the sink's input topics now.
func startSinkWait(ctx context.Context, cfg kafka.Config) (*sinkWait, error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		return nil, fmt.Errorf("sink lag: %w", err)
	}
	w := &sinkWait{rd: rd, ends: map[string]map[int32]int64{}}
	for _, t := range sink.DefaultInputs {
		if w.ends[t], err = rd.Ends(ctx, t); err != nil {
			rd.Close()
			return nil, fmt.Errorf("sink lag: %w", err)
		}
	}
	return w, nil
}

func (w *sinkWait) close() { w.rd.Close() }

// wait waits, at most timeout, until the sink's group (sink.DefaultName)
// has committed past every record, time marks aside, below the noted ends
// (kafka.Reader.Behind): the rows of what was written before the erasure
// are then in ClickHouse, so the delete reaches them instead of a lagging
// sink storing them after it.
func (w *sinkWait) wait(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		behind, err := w.rd.Behind(wctx, sink.DefaultName, w.ends)
		if err == nil && behind == 0 {
			return nil
		}
		if wctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d records written before the erasure not yet stored", behind)
			}
			return fmt.Errorf("the ClickHouse sink (group %q) has not caught up (is it running?): %w", sink.DefaultName, err)
		}
		select {
		case <-wctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
