package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/pipelines"
)

// TestBrokerUsers: `minecart broker --user --partner-login` runs the embedded
// broker with SASL and the partner ACLs of settlement (those of
// infra/kafka/init-acls.sh): the services' superuser created the whole
// topology, the partner sees its topics and not telemetry.
func TestBrokerUsers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"broker", "--addr", addr, "--data-dir", t.TempDir(),
			"--user", "minecart:svc-pw", "--partner-login", "acme:acme-pw"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	topics := func(user, pass string) kadm.TopicDetails {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for deadline := time.Now().Add(20 * time.Second); ; {
			tds, err := kadm.NewClient(cl).ListTopics(ctx)
			if err == nil && len(tds) > 0 {
				return tds
			}
			if time.Now().After(deadline) {
				t.Fatalf("list topics as %s: %v", user, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(topics("minecart", "svc-pw")) < len(pipelines.Topology); {
		if time.Now().After(deadline) {
			t.Fatal("the topology was not created")
		}
		time.Sleep(50 * time.Millisecond)
	}
	partner := topics("partner-acme", "acme-pw")
	if !partner.Has(pipelines.TopicRewardCredits) || !partner.Has(pipelines.TopicPartnerAcks) || partner.Has(pipelines.TopicTelemetryRaw) {
		t.Fatalf("partner acme sees %v", partner.Names())
	}
}

// TestBrokerPartnerLoginFlag: --partner-login takes a partner id as
// settlement.ValidID accepts it, and its environment variable is not that
// of `minecart catalog --partner` (MINECART_PARTNER, an id).
func TestBrokerPartnerLoginFlag(t *testing.T) {
	for v, want := range map[string]string{
		"a b:pw": `partner: id "a b": byte 1 (' ') not in [A-Za-z0-9._-]`,
		"a/b:pw": `partner: id "a/b": byte 1 ('/') not in [A-Za-z0-9._-]`,
		":pw":    "want NAME:PASSWORD",
	} {
		err := run(t.Context(), []string{"broker", "--addr", "nohostport", "--user", "minecart:pw", "--partner-login", v}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--partner-login") || !strings.Contains(err.Error(), want) {
			t.Errorf("--partner-login %q: %v, want %q", v, err, want)
		}
	}
	// A catalog's partner id in the environment is not a broker user: the
	// broker gets as far as its own address check.
	t.Setenv("MINECART_PARTNER", "acme")
	err := run(t.Context(), []string{"broker", "--addr", "nohostport", "--user", "minecart:pw"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "broker addr") {
		t.Errorf("broker with MINECART_PARTNER=acme: %v, want the address error", err)
	}
}
