package kafka

import (
	"context"

	"github.com/minecart/minecart/pipelines"
)

// restoreTask replays partition p of the stage's changelog, read_committed,
// from its start to its end (Reader.End: a transaction still open on the
// changelog, a previous owner's, is waited for, so its records are either
// all replayed or all skipped), through rs. It returns the records replayed.
func (r *runner) restoreTask(ctx context.Context, p int32, rs pipelines.Restorer) (int, error) {
	if r.restore == nil {
		rd, err := NewReader(r.cfg)
		if err != nil {
			return 0, err
		}
		r.restore = rd
	}
	n := 0
	err := r.restore.ReadAll(ctx, r.st.Changelog, p, func(rec pipelines.Record) error {
		n++
		return rs.Restore(ctx, rec)
	})
	return n, err
}
