package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// sinkGroup is the ClickHouse sink's consumer group (services/sink's
// default stage name).
const sinkGroup = "sink"

// listEnds returns the end offsets (high watermarks) of topics.
func listEnds(ctx context.Context, cfg kafka.Config, topics []string) (kadm.ListedOffsets, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	return ends, nil
}

// waitSinkCaughtUp waits, at most timeout, until the ClickHouse sink's
// group has committed past every record (time marks aside) below ends,
// the ends its topics had when the erasure began: the rows of what was
// written before the erasure are then in ClickHouse, so the delete
// reaches them instead of a lagging sink storing them after it. A
// transactional tail ends with a marker no consumer reads, so the
// records between the group's commit and the end are counted with the
// runtime's bounded read (kafka.Reader.Read), which never waits for a
// record that cannot come.
func waitSinkCaughtUp(ctx context.Context, cfg kafka.Config, ends kadm.ListedOffsets, timeout time.Duration) error {
	if len(ends) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return fmt.Errorf("sink lag: %w", err)
	}
	defer cl.Close()
	rcfg := cfg
	rcfg.Logger = slog.New(slog.DiscardHandler)
	rd, err := kafka.NewReader(rcfg)
	if err != nil {
		return fmt.Errorf("sink lag: %w", err)
	}
	defer rd.Close()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		behind, err := sinkBehind(wctx, kadm.NewClient(cl), rd, ends)
		if err == nil && behind == 0 {
			return nil
		}
		if wctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d records written before the erasure not yet stored", behind)
			}
			return fmt.Errorf("the ClickHouse sink (group %q) has not caught up (is it running?): %w", sinkGroup, err)
		}
		select {
		case <-wctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sinkBehind counts the records below ends that the sink's group has not
// committed past.
func sinkBehind(ctx context.Context, adm *kadm.Client, rd *kafka.Reader, ends kadm.ListedOffsets) (int, error) {
	committed, err := adm.FetchOffsets(ctx, sinkGroup)
	if err != nil {
		return 0, err
	}
	behind := 0
	var rerr error
	ends.Each(func(e kadm.ListedOffset) {
		if rerr != nil {
			return
		}
		from := int64(0)
		if o, ok := committed.Lookup(e.Topic, e.Partition); ok && o.Err == nil {
			from = o.At
		}
		if from >= e.Offset {
			return
		}
		rerr = rd.Read(ctx, e.Topic, e.Partition, from, e.Offset, func(r pipelines.Record) error {
			if !pipelines.IsMark(&r) {
				behind++
			}
			return nil
		})
	})
	return behind, rerr
}
