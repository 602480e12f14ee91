package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/auth/authtest"
	"github.com/minecart/minecart/services/campaign"
	campaignapi "github.com/minecart/minecart/services/campaign/api"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
)

// TestCampaignsCLI drives `minecart campaigns` against the campaign API
// over the ledger stage on the real broker: keygen, register-key (an
// operator), submit, list, show, pause (the partner), then audit of an
// export of the book, and audit refusing a book whose bonus was tampered
// with (re-signed by the ledger key: only the recomputation catches it).
func TestCampaignsCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	brokers := kafkatest.Broker(t)
	serde := schemas.SingleObject()
	creds := &authtest.MemTopic{}
	opTok, _, _ := auth.NewTokenRecord(ctx, creds, serde, auth.RoleOperator, "ops", time.Now())
	acmeTok, _, _ := auth.NewTokenRecord(ctx, creds, serde, auth.RolePartner, "acme", time.Now())
	a, err := auth.New(auth.Config{Credentials: creds, Serde: serde, SessionKey: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	st, err := ledgerstage.NewStage(ledgerstage.Config{Key: ledgertest.Key(1), Origin: "minecart/ledger", MaxBlockEntries: 4, Serde: serde, Blocks: src, Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	rcfg := kafkatest.Config(brokers)
	rcfg.Serde = serde
	defer kafkatest.Run(t, rcfg, st)()
	pub := ledgertest.Key(1).Public().(ed25519.PublicKey)
	book, _ := proofs.NewServer(proofs.Config{Blocks: src, PublicKey: pub, Logger: kafkatest.Logger()})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- book.Run(rctx) }()
	defer func() { cancel(); <-done }()
	prod, err := kafka.NewProducer(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	h, _ := campaignapi.NewHandler(campaignapi.Config{Producer: prod, Book: book, Serde: serde, Auth: a, Logger: kafkatest.Logger()})
	srv := httptest.NewServer(h)
	defer srv.Close()

	var out bytes.Buffer
	cli := func(args ...string) error {
		out.Reset()
		return run(ctx, append([]string{"campaigns"}, args...), &out, io.Discard)
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	keyFile := filepath.Join(dir, "acme.key")
	if err := cli("keygen", keyFile); err != nil {
		t.Fatal(err)
	}
	partnerPub := strings.TrimSpace(out.String())
	if err := cli("keygen", keyFile); err == nil {
		t.Error("keygen overwrote a key")
	}
	if err := cli("register-key", "--url", srv.URL, "--token", opTok, "--partner", "acme", "--pubkey", partnerPub); err != nil {
		t.Fatal(err)
	}
	wait("the key", func() bool { return book.PartnerKey("acme") != nil })
	def := campaign.Definition{Partner: "acme", Name: "double", Rule: "points", Start: "1970-01-01", End: "1970-12-31", Budget: 100, Cap: 60}
	b, _ := json.Marshal(def)
	defFile := filepath.Join(dir, "double.json")
	if err := os.WriteFile(defFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cli("submit", defFile, "--url", srv.URL, "--token", acmeTok, "--key", keyFile); err != nil {
		t.Fatal(err)
	}
	wait("the campaign", func() bool { _, ok := book.Campaign("acme/double"); return ok })
	var recs []kafka.Output
	for _, v := range []string{"v1", "v2"} {
		b, _ := serde.Marshal(ledgertest.Score(v, 1, 60))
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(v), Value: b})
	}
	for task := range 2 {
		b, _ := serde.Marshal(ledgertest.Watermark(task, 2, 2*ledgertest.DayMs))
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte("wm"), Value: b})
	}
	kafkatest.Produce(t, brokers, recs...)
	wait("the bonuses", func() bool { c, _ := book.Campaign("acme/double"); return c.Spent == 100 })
	if err := cli("list", "--url", srv.URL, "--token", acmeTok); err != nil || !strings.Contains(out.String(), "acme/double  active  1970-01-01..1970-12-31  100     100    0     2") {
		t.Errorf("list: %v\n%s", err, out.String())
	}
	if err := cli("pause", "acme/double", "--url", srv.URL, "--token", acmeTok, "--key", keyFile); err != nil {
		t.Fatal(err)
	}
	wait("the pause", func() bool { c, _ := book.Campaign("acme/double"); return c.Status == ledger.StatusPaused })
	if err := cli("show", "acme/double", "--url", srv.URL, "--token", acmeTok); err != nil || !strings.Contains(out.String(), `"status": "paused"`) {
		t.Errorf("show: %v\n%s", err, out.String())
	}

	// audit of an export of the book, then of a tampered one.
	var blks []*ledger.Block
	rd, _ := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err := rd.Blocks(ctx, func(r ledger.Record) error { blks = append(blks, r.Block); return nil }); err != nil {
		t.Fatal(err)
	}
	exp := filepath.Join(dir, "book.mcl")
	os.WriteFile(exp, ledgertest.Export(t, blks), 0o600)
	pubFile := filepath.Join(dir, "ledger.pub")
	os.WriteFile(pubFile, []byte(ledger.EncodePublicKey(pub)), 0o600)
	if err := cli("audit", "--file", exp, "--pubkey", pubFile); err != nil || !strings.Contains(out.String(), "1 campaigns, 2 bonuses, 100 points paid") {
		t.Errorf("audit: %v\n%s", err, out.String())
	}
	tampered := tamper(t, blks)
	os.WriteFile(exp, ledgertest.Export(t, tampered), 0o600)
	if err := cli("audit", "--file", exp, "--pubkey", pubFile); err == nil || !strings.Contains(err.Error(), "campaigns NOT verified") {
		t.Errorf("audit of a tampered book: %v", err)
	}
}

// tamper rebuilds the book with its first bonus asking and paying 1 point
// less than its rule gives, every block signed by the ledger key.
func tamper(t *testing.T, blks []*ledger.Block) []*ledger.Block {
	s, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(1))
	book := ledger.NewBook()
	var out []*ledger.Block
	done := false
	for _, b := range blks {
		var es []ledger.Entry
		for _, raw := range b.Entries {
			e, _ := ledger.DecodeEntry(raw)
			if e.Kind == ledger.KindBonus && !done {
				e.Amount, e.Requested, done = e.Amount-1, e.Requested-1, true
			}
			es = append(es, e)
		}
		nb, _, _, err := book.Append(ledger.Release{Entries: es, TimestampMs: b.Header.TimestampMs, Clock: b.Header.Clock}, 100, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, nb...)
	}
	return out
}
