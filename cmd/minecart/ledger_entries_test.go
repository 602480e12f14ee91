package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestVerifyEntriesTopic: `ledger verify --entries --policy` reads the
// entries topic of a real broker and accepts the book's entries with a
// cosigned checkpoint record after each block; it names and refuses a
// checkpoint record below the quorum, one written twice, one before its
// entries, one of another tree (a fork) and an entry that is not the
// book's leaf. Without --policy the same good topic passes on the ledger
// signature alone.
func TestVerifyEntriesTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	dir := t.TempDir()
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, blks := ledgertest.SmallBook(t, signer) // sizes 3, 5, 7
	serde := schemas.SingleObject()
	var recs []kafka.Output
	for i, b := range blks {
		v, err := serde.Marshal(b.Avro())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte(fmt.Sprint(i)), Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
	pubFile := filepath.Join(dir, "ledger.pub")
	if err := os.WriteFile(pubFile, []byte(ledger.EncodePublicKey(signer.Public())), 0o644); err != nil {
		t.Fatal(err)
	}
	var signers []note.Signer
	policy := "log " + signer.VerifierKey() + "\n"
	for i := range 3 {
		sg, vkey := ledgertest.Cosigner(t, fmt.Sprintf("witness.test/w%d", i+1), byte(20+i))
		signers = append(signers, sg)
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d\n", i+1, vkey, 9000+i)
	}
	policy += "group g 2 w1 w2 w3\nquorum g\n"
	policyFile := filepath.Join(dir, "policy.txt")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	lv, _ := note.NewVerifier(signer.VerifierKey())

	entry := func(topic string, i int, e []byte) kafka.Output {
		v, err := serde.Marshal(&avro.LedgerEntry{Entry: e, LeafIndex: int64(i), Kind: avro.EntryKindCredit})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Output{Topic: topic, Key: fmt.Appendf(nil, "e%d", i), Value: v}
	}
	checkpoint := func(topic string, size uint64, text string) kafka.Output {
		return kafka.Output{Topic: topic, Key: pipelines.PartnerCheckpointKey(size), Value: []byte(text), Headers: pipelines.PartnerCheckpointHeaders(size)}
	}
	// topic builds an entries topic: the book's entries block by block,
	// each block followed by its checkpoint cosigned by w1 and w2, with
	// edit changing what is written.
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for _, v := range []string{"v1", "v2", "v3"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 101))
	}
	fork, _, _, err := forked.Append(rel, 3, signer)
	if err != nil {
		t.Fatal(err)
	}
	type edit func(blk int, recs []kafka.Output) []kafka.Output
	topic := func(name string, ed edit) string {
		kafkatest.CreateTopics(t, brokers, pipelines.TopicSpec{Name: name, Partitions: 1})
		var out []kafka.Output
		n := 0
		for bi, b := range blks {
			var recs []kafka.Output
			for _, e := range b.Entries {
				recs = append(recs, entry(name, n, e))
				n++
			}
			recs = append(recs, checkpoint(name, uint64(n), ledgertest.Cosign(t, b.Checkpoint, lv, signers[0], signers[1])))
			if ed != nil {
				recs = ed(bi, recs)
			}
			out = append(out, recs...)
		}
		kafkatest.Produce(t, brokers, out...)
		return name
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := ledgerCLI(context.Background(), append([]string{"verify", "--brokers", strings.Join(brokers, ","), "--pubkey", pubFile, "--entries"}, args...), &out)
		return out.String(), err
	}

	good := topic(pipelines.TopicLedgerEntries, nil)
	out, err := run("--policy", policyFile)
	if err != nil || !strings.Contains(out, "entries topic minecart.ledger.entries: 7 entries") ||
		!strings.Contains(out, "3 checkpoint records in minecart.ledger.entries (sizes 3 to 7, each once and in order): signed by the ledger key, cosigned by its quorum (2 of 3 witnesses)") {
		t.Fatalf("good topic with --policy: %v\n%s", err, out)
	}
	if out, err := run("--entries-topic", good); err != nil || !strings.Contains(out, "3 checkpoint records") {
		t.Fatalf("good topic without --policy: %v\n%s", err, out)
	}

	for _, c := range []struct {
		name string
		ed   edit
		want string
	}{
		{"below quorum", func(bi int, recs []kafka.Output) []kafka.Output {
			if bi == 1 {
				recs[len(recs)-1].Value = []byte(ledgertest.Cosign(t, blks[1].Checkpoint, lv, signers[2]))
			}
			return recs
		}, "checkpoint record of size 5: checkpoint of size 5 cosigned by [w3]: witness quorum not met"},
		{"twice", func(bi int, recs []kafka.Output) []kafka.Output {
			if bi == 1 {
				recs = append(recs, recs[len(recs)-1])
			}
			return recs
		}, "checkpoint record of size 5 after one of size 5 (twice or out of order)"},
		{"before its entries", func(bi int, recs []kafka.Output) []kafka.Output {
			if bi == 1 {
				recs[0], recs[len(recs)-1] = recs[len(recs)-1], recs[0]
			}
			return recs
		}, "checkpoint record of size 5 after only 3 entries"},
		{"not the book's leaf", func(bi int, recs []kafka.Output) []kafka.Output {
			if bi == 2 {
				recs[0] = entry(recs[0].Topic, 5, append(bytes.Clone(blks[2].Entries[0]), 0))
			}
			return recs
		}, "entry 5 is not the book's leaf 5"},
		{"another tree", func(bi int, recs []kafka.Output) []kafka.Output {
			if bi == 0 { // a size-3 tree of other entries, signed and cosigned
				recs[len(recs)-1] = checkpoint(recs[0].Topic, 3, ledgertest.Cosign(t, fork[0].Checkpoint, lv, signers[0], signers[1]))
			}
			return recs
		}, "FORK: checkpoint record of size 3 has root"},
	} {
		name := topic("entries."+strings.ReplaceAll(c.name, " ", "-"), c.ed)
		out, err := run("--policy", policyFile, "--entries-topic", name)
		if !errors.Is(err, errEntriesTopic) || !strings.Contains(out, c.want) || !strings.Contains(out, "NOT verified") {
			t.Errorf("%s: %v, want %q\n%s", c.name, err, c.want, out)
		}
	}
}
