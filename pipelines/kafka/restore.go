package kafka

import (
	"context"

	"github.com/minecart/minecart/pipelines"
)

// restoreTask replays partition p of the stage's changelog, read_committed,
// from its start to its end (Reader.End: a transaction still open on the
// changelog, a previous owner's, is waited for, so its records are either
// all replayed or all skipped), through rs. The runtime's reserved
// applied-offset records (AppliedKeyPrefix) are not given to rs: it
// returns them instead, input topic -> next offset to process (the last
// record of each key), with the number of records replayed through rs.
func (r *runner) restoreTask(ctx context.Context, p int32, rs pipelines.Restorer) (int, map[string]int64, error) {
	if r.restore == nil {
		rd, err := NewReader(r.cfg)
		if err != nil {
			return 0, nil, err
		}
		r.restore = rd
	}
	n := 0
	applied := map[string]int64{}
	err := r.restore.ReadAll(ctx, r.st.Changelog, p, func(rec pipelines.Record) error {
		if isApplied(rec.Key) {
			topic, part, next, err := parseApplied(rec.Key, rec.Value)
			switch {
			case err != nil:
				r.log.Warn("changelog: bad applied offset record ignored", "partition", p, "offset", rec.Offset, "err", err)
			case part != p:
				r.log.Warn("changelog: applied offset of another task's partition ignored", "partition", p, "offset", rec.Offset,
					"topic", topic, "input_partition", part)
			default:
				applied[topic] = next
			}
			return nil
		}
		n++
		return rs.Restore(ctx, rec)
	})
	return n, applied, err
}
