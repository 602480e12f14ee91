package stack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/witness"
)

// WitnessConfig is one witness the stack runs in process (a partner's
// node in production: `minecart witness`).
type WitnessConfig struct {
	// Name is its key name (default "minecart.local/witness-N", N from 1).
	Name string
	// Addr is its HTTP listener (default 127.0.0.1:0).
	Addr string
	// Dir is its state directory (default <DataDir>/witness-N, or a
	// temporary directory removed on Close without a DataDir).
	Dir string
	// Configure, if set, adjusts the witness's configuration before it
	// starts (the hook for modes such as mirroring).
	Configure func(*witness.Config)
}

// PolicyFile is the witness policy the stack writes in its DataDir when
// it runs its own witnesses.
const PolicyFile = "witness-policy.txt"

// WrittenPolicy is the policy of the embedded witnesses: every witness
// at the URL it listens on, the group of them with threshold k, and the
// ledger's key on the log line. With mirrors (a witness in mirror mode:
// its mirror key, at its /ledger prefix), the quorum also requires one
// mirror's cosignature (group mirrors any ..., quorum all of witnesses
// and mirrors: nothing is published before a copy of the whole book
// outside the ledger verified it); without, the quorum is the group of
// witnesses (named "embedded").
func WrittenPolicy(logVKey string, names, vkeys, urls []string, k int, mirrors ...PolicyMirror) []byte {
	var b bytes.Buffer
	b.WriteString("# minecart run: the embedded witnesses (rewritten at every start: the ports change)\n")
	fmt.Fprintf(&b, "log %s\n", logVKey)
	for i := range names {
		fmt.Fprintf(&b, "witness %s %s %s\n", names[i], vkeys[i], urls[i])
	}
	for _, m := range mirrors {
		fmt.Fprintf(&b, "witness %s %s %s/ledger\n", m.Name, m.VKey, m.URL)
	}
	group := "embedded"
	if len(mirrors) > 0 {
		group = "witnesses"
	}
	fmt.Fprintf(&b, "group %s %d %s\n", group, k, strings.Join(names, " "))
	if len(mirrors) > 0 {
		b.WriteString("group mirrors any")
		for _, m := range mirrors {
			b.WriteString(" " + m.Name)
		}
		b.WriteString("\ngroup embedded all witnesses mirrors\n")
	}
	b.WriteString("quorum embedded\n")
	return b.Bytes()
}

// PolicyMirror is a mirror in WrittenPolicy: its policy name, mirror
// key and the root of its listener (the policy names URL + "/ledger").
type PolicyMirror struct{ Name, VKey, URL string }

// startWitnesses starts cfg.Witnesses, writes their policy (a majority
// quorum) and returns it; with cfg.WitnessPolicy it reads that file
// instead (and then starts no witness).
func (s *Stack) startWitnesses(logVKey string) (*ledger.Policy, error) {
	if s.cfg.WitnessPolicy != "" {
		text, err := os.ReadFile(s.cfg.WitnessPolicy)
		if err != nil {
			return nil, fmt.Errorf("witness policy: %w", err)
		}
		p, err := ledger.ParsePolicy(text)
		if err != nil {
			return nil, err
		}
		return p, p.CheckLog(logVKey)
	}
	if len(s.cfg.Witnesses) == 0 {
		return nil, nil
	}
	var names, vkeys, urls []string
	var mirrors []PolicyMirror
	for i, wc := range s.cfg.Witnesses {
		n := i + 1
		if wc.Name == "" {
			wc.Name = "minecart.local/witness-" + strconv.Itoa(n)
		}
		if wc.Addr == "" {
			wc.Addr = "127.0.0.1:0"
		}
		if wc.Dir == "" {
			if s.cfg.DataDir != "" {
				wc.Dir = filepath.Join(s.cfg.DataDir, "witness-"+strconv.Itoa(n))
			} else {
				d, err := os.MkdirTemp("", "minecart-witness-")
				if err != nil {
					return nil, err
				}
				s.env.OnClose(func() error { return os.RemoveAll(d) })
				wc.Dir = d
			}
		}
		wcfg := witness.Config{Dir: wc.Dir, Name: wc.Name, Logs: []string{logVKey}, Logger: s.cfg.Logger.With("witness", n)}
		if wc.Configure != nil {
			wc.Configure(&wcfg)
		}
		w, err := witness.New(wcfg)
		if err != nil {
			return nil, fmt.Errorf("witness %d: %w", n, err)
		}
		if w.Mirror() != nil {
			s.env.Go("witness-"+strconv.Itoa(n)+"-mirror", w.Run) // mirror mode: catch up with every cosigned checkpoint
		}
		srv := daemon.NewServer(wc.Addr, w.Handler())
		if err := s.env.Serve("witness-"+strconv.Itoa(n), srv); err != nil {
			return nil, fmt.Errorf("witness %d: %w", n, err)
		}
		s.Witnesses = append(s.Witnesses, EmbeddedWitness{Witness: w, URL: "http://" + srv.Addr, PolicyName: "w" + strconv.Itoa(n)})
		names = append(names, "w"+strconv.Itoa(n))
		vkeys = append(vkeys, w.VerifierKey())
		urls = append(urls, "http://"+srv.Addr)
		if m := w.Mirror(); m != nil {
			mirrors = append(mirrors, PolicyMirror{Name: "m" + strconv.Itoa(n), VKey: m.VerifierKey(), URL: "http://" + srv.Addr})
		}
	}
	text := WrittenPolicy(logVKey, names, vkeys, urls, len(names)/2+1, mirrors...)
	if s.cfg.DataDir != "" {
		if err := witness.WriteFileAtomic(filepath.Join(s.cfg.DataDir, PolicyFile), text, 0o600); err != nil {
			return nil, fmt.Errorf("witness policy: %w", err)
		}
	}
	return ledger.ParsePolicy(text)
}

// EmbeddedWitness is a witness the stack runs.
type EmbeddedWitness struct {
	*witness.Witness
	URL        string // the root of its API
	PolicyName string // its name in the policy (w1, w2, ...)
}

// startPublication runs the publisher (the witness quorum before
// publication) and the reader of the published checkpoints that feeds
// the proofs server.
func (s *Stack) startPublication(published *blocks.Reader) error {
	store, err := blocks.NewCheckpointStore(s.Pipelines, s.Producer, s.cfg.Logger, s.Registry)
	if err != nil {
		return err
	}
	s.env.OnClose(func() error { store.Close(); return nil })
	pub, err := ledgerstage.NewPublisher(ledgerstage.PublisherConfig{
		Blocks: published, PublicKey: s.LedgerKey.Public().(ed25519.PublicKey),
		Cosign: ledgerstage.CosignConfig{Policy: s.Policy},
		Store:  store, Logger: s.cfg.Logger, Registerer: s.Registry,
	})
	if err != nil {
		return err
	}
	s.Publisher = pub
	s.env.Go("ledger-publisher", pub.Run)
	rd, err := kafka.NewReader(s.Pipelines)
	if err != nil {
		return err
	}
	s.env.OnClose(func() error { rd.Close(); return nil })
	s.env.Go("ledger-checkpoints-reader", func(ctx context.Context) error {
		return rd.Follow(ctx, pipelines.TopicLedgerCheckpoints, func(rec pipelines.Record) error {
			if err := s.Ledger.AddCosigned(rec.Value); err != nil {
				s.cfg.Logger.Error("published checkpoint refused", "key", string(rec.Key), "offset", rec.Offset, "err", err)
			}
			return nil
		}, func() {})
	})
	return nil
}

// CheckpointKey is the key of a cosigned checkpoint of tree size size.
func CheckpointKey(size uint64) []byte { return fmt.Appendf(nil, "%020d", size) }
