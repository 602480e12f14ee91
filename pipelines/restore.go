package pipelines

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restoreTask replays partition p of the stage's changelog, read_committed,
// from its start to its end, through rs. It returns the records replayed.
//
// The end is the partition's last stable offset once it has reached the
// high watermark seen at the start: a transaction still open on the
// changelog (a previous owner's, being aborted or committed) is waited for,
// so its records are either all replayed or all skipped. With
// KeepControlRecords the position also moves past commit/abort markers,
// which is how the replay knows it reached the end.
func (r *runner) restoreTask(ctx context.Context, p int32, rs Restorer) (int, error) {
	if r.restore == nil {
		cl, err := kgo.NewClient(append(r.cfg.baseOpts(),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.KeepControlRecords(),
		)...)
		if err != nil {
			return 0, err
		}
		r.restore = cl
	}
	end, err := stableEnd(ctx, kadm.NewClient(r.restore), r.st.Changelog, p)
	if err != nil || end == 0 {
		return 0, err
	}
	topic := r.st.Changelog
	r.restore.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}})
	defer r.restore.RemoveConsumePartitions(map[string][]int32{topic: {p}})
	var pos int64
	n := 0
	for pos < end {
		fs := r.restore.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) {
				ferr = err
			}
		})
		if ferr != nil {
			return n, ferr
		}
		var rerr error
		fs.EachRecord(func(kr *kgo.Record) {
			if rerr != nil || kr.Topic != topic || kr.Partition != p || kr.Offset >= end {
				return
			}
			pos = kr.Offset + 1
			if kr.Attrs.IsControl() {
				return
			}
			rec := fromKgo(kr)
			if err := safely(func() error { return rs.Restore(ctx, rec) }); err != nil {
				rerr = fmt.Errorf("offset %d: %w", kr.Offset, err)
				return
			}
			n++
		})
		if rerr != nil {
			return n, rerr
		}
	}
	return n, nil
}

// stableEnd returns the last stable offset of topic/p once no transaction
// that was open when it was called is still open.
func stableEnd(ctx context.Context, adm *kadm.Client, topic string, p int32) (int64, error) {
	hwm, err := listOffset(ctx, adm.ListEndOffsets, topic, p)
	if err != nil {
		return 0, err
	}
	for {
		lso, err := listOffset(ctx, adm.ListCommittedOffsets, topic, p)
		if err != nil {
			return 0, err
		}
		if lso >= hwm {
			return lso, nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

func listOffset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string, p int32) (int64, error) {
	offs, err := list(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	o, ok := offs.Lookup(topic, p)
	if !ok {
		return 0, fmt.Errorf("list offsets %s: no partition %d", topic, p)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("list offsets %s/%d: %w", topic, p, o.Err)
	}
	return o.Offset, nil
}
