package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
)

// TestAccountsCredentials: `accounts password` stores an argon2id hash of
// the password (never the password), `rotate` a new one and prints it
// once, `token` an operator's or partner's SHA-256 token hash, `revoke` a
// tombstone; the records verify with services/auth. Bad ids are refused
// and nothing is written for them; `devices add` refuses a vehicle id the
// APIs could never serve.
func TestAccountsCredentials(t *testing.T) {
	brokers := kafkatest.Broker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cli := func(args ...string) error {
		out.Reset()
		return run(ctx, append(args[:1:1], append([]string{"--brokers", strings.Join(brokers, ",")}, args[1:]...)...), &out, io.Discard)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("a long enough password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cli("accounts", "password", "--owner", "owner-1", "--password-file", pwFile); err != nil {
		t.Fatal(err)
	}
	if err := cli("accounts", "rotate", "--owner", "owner-2"); err != nil {
		t.Fatal(err)
	}
	_, rotated, _ := strings.Cut(strings.TrimSpace(out.String()), "owner-2: ")
	rotated, _, _ = strings.Cut(rotated, " ")
	if len(rotated) != 43 {
		t.Fatalf("rotate printed %q", out.String())
	}
	if err := cli("accounts", "token", "--operator", "ops"); err != nil {
		t.Fatal(err)
	}
	_, opTok, _ := strings.Cut(out.String(), "token of operator/ops: ")
	opTok, _, _ = strings.Cut(opTok, " ")
	if err := cli("accounts", "token", "--partner", "acme"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"accounts", "password", "--owner", "a/b c", "--password-file", pwFile},
		{"accounts", "rotate", "--owner", strings.Repeat("o", 65)},
		{"accounts", "token", "--operator", "x", "--partner", "y"},
		{"accounts", "token"},
		{"accounts", "revoke", "--owner", "a", "--partner", "b"},
		{"devices", "add", "--id", "d-1", "--vehicle", "a/b c"},
		{"devices", "add", "--id", "d-2", "--vehicle", ".."},
	} {
		if err := cli(args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("short\n"), 0o600)
	if err := cli("accounts", "password", "--owner", "owner-3", "--password-file", short); err == nil {
		t.Error("a 5-byte password accepted")
	}

	recs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicCredentials)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]avro.Credential{}
	serde := schemas.SingleObject()
	for _, r := range recs {
		var c avro.Credential
		if err := serde.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != c.Subject {
			t.Errorf("key %s holds %s", r.Key, c.Subject)
		}
		creds[c.Subject] = c
	}
	if len(recs) != 4 || len(creds) != 4 {
		t.Fatalf("%d records (%v), want 4", len(recs), creds)
	}
	if h := creds["owner/owner-1"].Hash; strings.Contains(h, "password") || !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("owner-1's hash %q", h)
	}
	if ok, err := auth.VerifyPassword(creds["owner/owner-1"].Hash, "a long enough password"); !ok || err != nil {
		t.Errorf("owner-1's password does not verify: %v", err)
	}
	if ok, _ := auth.VerifyPassword(creds["owner/owner-2"].Hash, rotated); !ok {
		t.Error("the rotated password does not verify")
	}
	if !strings.HasPrefix(creds["operator/ops"].Hash, "$sha256$") || strings.Contains(creds["operator/ops"].Hash, opTok) {
		t.Errorf("operator hash %q", creds["operator/ops"].Hash)
	}
	if err := cli("accounts", "revoke", "--partner", "acme"); err != nil {
		t.Fatal(err)
	}
	recs = kafkatest.WaitRecords(t, brokers, pipelines.TopicCredentials, 5, 10*time.Second)
	if last := recs[len(recs)-1]; string(last.Key) != "partner/acme" || last.Value != nil {
		t.Errorf("revoke wrote %s=%x, want a tombstone of partner/acme", last.Key, last.Value)
	}
	devs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicDevices)
	if err != nil || len(devs) != 0 {
		t.Errorf("devices topic: %d records, %v; want none", len(devs), err)
	}
}
