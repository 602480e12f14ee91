package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/stack"
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

// TestBrokerGeneratedCredentials: `minecart broker` without --user
// requires SCRAM all the same, with the credentials it generated into
// <data-dir>/credentials.json (0600) on the first start and keeps after:
// a client without credentials gets nothing, the generated superuser
// sees the topology, the analyst does not see the device registry.
func TestBrokerGeneratedCredentials(t *testing.T) {
	dir := t.TempDir()
	var first broker.Credentials
	for round := range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		pr, pw := io.Pipe()
		go func() {
			done <- run(ctx, []string{"broker", "--addr", addr, "--data-dir", dir}, pw, io.Discard)
			pw.Close()
		}()
		// Ready (topology created) once it prints where it listens; the
		// rest of its output is drained.
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "kafka listening") {
					close(ready)
				}
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("round %d: broker: %v", round, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the broker did not start", round)
		}
		path := filepath.Join(dir, broker.CredentialsFile)
		var creds broker.Credentials
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			b, err := os.ReadFile(path)
			if err == nil && json.Unmarshal(b, &creds) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no credentials file: %v", err)
			}
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("credentials file mode %v %v", st.Mode().Perm(), err)
		}
		super, _ := creds.ByRole(broker.RoleSuperuser, "")
		analyst, _ := creds.ByRole(broker.RoleAnalyst, "")
		topics := func(opts ...kgo.Opt) (kadm.TopicDetails, error) {
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(2 * time.Second)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			return kadm.NewClient(cl).ListTopics(cctx)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			tds, err := topics(stack.SASL(super))
			if err == nil && len(tds) >= len(pipelines.Topology) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: superuser: %v (%d topics)", round, err, len(tds))
			}
		}
		if tds, err := topics(); err == nil {
			t.Errorf("round %d: no credentials listed %v", round, tds.Names())
		}
		if tds, err := topics(stack.SASL(analyst)); err != nil || tds.Has(pipelines.TopicDevices) || !tds.Has(pipelines.TopicLedgerBlocks) {
			t.Errorf("round %d: analyst sees %v (%v)", round, tds.Names(), err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = creds
		} else if !reflect.DeepEqual(first, creds) {
			t.Errorf("credentials changed across a restart:\n%+v\n%+v", first, creds)
		}
	}
}
