package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/auth/authtest"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/campaign/api"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
)

func do(t *testing.T, method, url, tok string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestCampaignAPIOnBroker runs the whole path on the real broker: an
// operator registers a partner's key, the partner submits a signed
// campaign over HTTP, the ledger stage appends it and pays bonuses on the
// scores that follow, the API shows what the budget has left, the
// partner pauses it; forged, foreign and unsigned requests are refused;
// the audit recomputes the book.
func TestCampaignAPIOnBroker(t *testing.T) {
	ctx := context.Background()
	brokers := kafkatest.Broker(t)
	serde := schemas.SingleObject()
	creds := &authtest.MemTopic{}
	opTok, _, err := auth.NewTokenRecord(ctx, creds, serde, auth.RoleOperator, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	acmeTok, _, _ := auth.NewTokenRecord(ctx, creds, serde, auth.RolePartner, "acme", time.Now())
	otherTok, _, _ := auth.NewTokenRecord(ctx, creds, serde, auth.RolePartner, "other", time.Now())
	a, err := auth.New(auth.Config{Credentials: creds, Serde: serde, SessionKey: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	rcfg := kafkatest.Config(brokers)
	rcfg.Serde = serde
	stop := kafkatest.Run(t, rcfg, mustStage(t, brokers))
	defer stop()
	src, err := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	book, err := proofs.NewServer(proofs.Config{Blocks: src, PublicKey: ledgertest.Key(1).Public().(ed25519.PublicKey), Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- book.Run(rctx) }()
	defer func() { cancel(); <-done }()
	prod, err := kafka.NewProducer(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	h, err := api.NewHandler(api.Config{Producer: prod, Book: book, Serde: serde, Auth: a, Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	pub, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{5}, 64)))
	_, forger, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{6}, 64)))
	key := api.KeyBody{PublicKey: base64.StdEncoding.EncodeToString(pub)}
	if code, _ := do(t, "PUT", srv.URL+"/v1/partners/acme/key", acmeTok, key); code != http.StatusForbidden {
		t.Errorf("a partner registered its own key: %d", code)
	}
	if code, b := do(t, "PUT", srv.URL+"/v1/partners/acme/key", opTok, key); code != http.StatusAccepted {
		t.Fatalf("key: %d %s", code, b)
	}
	wait("the key in the book", func() bool { return book.PartnerKey("acme") != nil })

	d := campaign.Definition{Partner: "acme", Name: "double", Title: "double points", Rule: `score >= 80.0 ? points : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 100, Cap: 60}
	sign := func(k ed25519.PrivateKey) api.SubmitBody {
		e := campaign.Submit(d, k, 0)
		return api.SubmitBody{Definition: d, Signature: base64.StdEncoding.EncodeToString(e.Signature)}
	}
	if code, _ := do(t, "POST", srv.URL+"/v1/campaigns", acmeTok, sign(forger)); code != http.StatusForbidden {
		t.Errorf("forged submit: %d, want 403", code)
	}
	if code, _ := do(t, "POST", srv.URL+"/v1/campaigns", otherTok, sign(priv)); code != http.StatusForbidden {
		t.Errorf("another partner's submit: %d, want 403", code)
	}
	bad := d
	bad.Rule = "points * 2.5"
	e := campaign.Submit(bad, priv, 0)
	if code, _ := do(t, "POST", srv.URL+"/v1/campaigns", acmeTok, api.SubmitBody{Definition: bad, Signature: base64.StdEncoding.EncodeToString(e.Signature)}); code != http.StatusUnprocessableEntity {
		t.Errorf("a rule of type double: %d, want 422", code)
	}
	if code, b := do(t, "POST", srv.URL+"/v1/campaigns", acmeTok, sign(priv)); code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", code, b)
	}
	get := func(tok string) (int, api.Campaign) {
		code, b := do(t, "GET", srv.URL+"/v1/campaigns/acme/double", tok, nil)
		var c api.Campaign
		_ = json.Unmarshal(b, &c)
		return code, c
	}
	wait("the campaign in the book", func() bool { code, _ := get(acmeTok); return code == 200 })
	if code, _ := get(otherTok); code != http.StatusForbidden {
		t.Errorf("another partner read the campaign: %d", code)
	}

	// Three vehicles' day (points 60, score 87.5): the budget of 100 pays
	// 60 and the remaining 40, in the fixed order, and nothing more.
	var recs []kafka.Output
	for _, v := range []string{"v1", "v2", "v3"} {
		s := ledgertest.Score(v, 1, 60)
		b, _ := serde.Marshal(s)
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(v), Value: b})
	}
	for task := range 2 {
		b, _ := serde.Marshal(ledgertest.Watermark(task, 2, 2*ledgertest.DayMs))
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte("wm"), Value: b})
	}
	kafkatest.Produce(t, brokers, recs...)
	var c api.Campaign
	wait("the bonuses", func() bool { _, c = get(opTok); return c.Spent == 100 })
	if c.Left != 0 || c.Bonuses != 2 || c.Status != ledger.StatusActive {
		t.Errorf("after the day: %+v", c)
	}
	code, b := do(t, "GET", srv.URL+"/v1/campaigns", otherTok, nil)
	if code != 200 || string(bytes.TrimSpace(b)) != "[]" {
		t.Errorf("other's list: %d %s", code, b)
	}

	h32 := d.RuleHash()
	pause := campaign.Act(ledger.ActionPause, "acme", d.ID(), h32[:], "n1", priv, 0)
	body := api.ActionBody{Nonce: "n1", Signature: base64.StdEncoding.EncodeToString(pause.Signature)}
	if code, _ := do(t, "POST", srv.URL+"/v1/campaigns/acme/double/pause", acmeTok, api.ActionBody{Nonce: "n2", Signature: body.Signature}); code != http.StatusForbidden {
		t.Errorf("a signature for another nonce: %d, want 403", code)
	}
	if code, b := do(t, "POST", srv.URL+"/v1/campaigns/acme/double/pause", acmeTok, body); code != http.StatusAccepted {
		t.Fatalf("pause: %d %s", code, b)
	}
	wait("the pause", func() bool { _, c = get(acmeTok); return c.Status == ledger.StatusPaused })

	rep, err := campaign.Audit(ctx, src, ledgertest.Key(1).Public().(ed25519.PublicKey))
	if err != nil || rep.Bonuses != 2 || rep.Paid != 100 {
		t.Errorf("audit %+v, %v", rep, err)
	}
}

func mustStage(t *testing.T, brokers []string) pipelines.Stage {
	src, err := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ledgerstage.NewStage(ledgerstage.Config{Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: 2,
		Serde: schemas.SingleObject(), Blocks: src, Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
