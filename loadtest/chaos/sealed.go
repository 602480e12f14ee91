package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
)

// pseudonymKeyFile is where `minecart run` keeps the key that seals the
// pseudonyms topic's keys (services/stack), in its data directory.
const pseudonymKeyFile = "pseudonyms.key"

// opener opens the sealed records of a finished run (docs/privacy.md):
// the pseudonyms topic read to its end under the run's sealing key.
type opener struct {
	serde *schemas.Serde
	dir   *pseudonym.Directory // nil: the run left no sealing key
}

// newOpener reads the run's pseudonym keys when its data directory holds
// the sealing key; a run without one (the stages as separate processes,
// scoring without -pseudonym-key) writes no sealed record.
func newOpener(ctx context.Context, opts []kgo.Opt, dataDir string, serde *schemas.Serde) (*opener, error) {
	o := &opener{serde: serde}
	path := filepath.Join(dataDir, pseudonymKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	seal, err := pseudonym.LoadSealKey(path)
	if err != nil {
		return nil, err
	}
	o.dir = pseudonym.NewDirectory()
	err = ReadTopic(ctx, opts, pipelines.TopicLedgerPseudonyms, func(r *kgo.Record) error {
		if r.Value == nil {
			o.dir.Delete(string(r.Key))
			return nil
		}
		var p avro.Pseudonym
		if err := serde.Unmarshal(r.Value, &p); err != nil {
			return fmt.Errorf("pseudonyms offset %d: %w", r.Offset, err)
		}
		op, err := seal.OpenRecord(string(r.Key), &p)
		if err != nil {
			return fmt.Errorf("pseudonyms offset %d: %w", r.Offset, err)
		}
		o.dir.Put(op)
		return nil
	})
	return o, err
}

// clear is r's value in clear: the inner record of a sealed value, the
// value itself otherwise.
func (o *opener) clear(r *kgo.Record) ([]byte, error) {
	if name, err := o.serde.Name(r.Value); err != nil || name != schemas.Sealed {
		return r.Value, nil
	}
	if o.dir == nil {
		return nil, fmt.Errorf("%s offset %d: a sealed record, and the run left no %s", r.Topic, r.Offset, pseudonymKeyFile)
	}
	var s avro.Sealed
	if err := o.serde.Unmarshal(r.Value, &s); err != nil {
		return nil, fmt.Errorf("%s offset %d: %w", r.Topic, r.Offset, err)
	}
	op, ok := o.dir.Open(s.Pseudonym)
	if !ok {
		return nil, fmt.Errorf("%s offset %d: no key for %s", r.Topic, r.Offset, s.Pseudonym)
	}
	return shred.Open(op, r.Topic, string(r.Key), &s)
}
