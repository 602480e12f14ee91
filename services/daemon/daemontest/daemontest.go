// Package daemontest runs service mains in tests the way docker-compose
// runs them: against a broker that requires SASL/SCRAM-SHA-512, with the
// connection given through MINECART_* environment variables.
package daemontest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/daemon"
)

// The SASL credentials of the broker: docker-compose's service user.
const (
	User     = "minecart"
	Password = "pw"
	SASL     = "scram-sha-512:" + User + ":" + Password
)

// Broker starts an in-memory kfake broker on 127.0.0.1 with a random port
// that accepts only SASL/SCRAM-SHA-512 as User (no topics: the mains
// create them), sets MINECART_BROKERS and MINECART_KAFKA_SASL for the
// test, and returns a kafka.Config (with the SASL client options and
// the default Serde) for the test's own producing and reading.
func Broker(t testing.TB) kafka.Config {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", User, Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	t.Setenv("MINECART_BROKERS", brokers[0])
	t.Setenv("MINECART_KAFKA_SASL", SASL)
	k := daemon.Kafka{Brokers: brokers[0], SASL: SASL}
	opts, err := k.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Config{Brokers: brokers, Logger: kafkatest.Logger(), ClientOptions: opts}
}

// Addr returns a free 127.0.0.1 address for a main's HTTP server.
func Addr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitGroup waits until consumer group has a member with partitions
// assigned (the stage is running), or fails the test after timeout.
func WaitGroup(t testing.TB, cfg kafka.Config, group string, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil && g.State == "Stable" && len(g.AssignedPartitions()) > 0 {
				return
			}
			last = gs[group].State
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s not running after %v (state %q, err %v)", group, timeout, last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Read returns the first n committed records of topic (read_committed,
// from the start), or fails the test after timeout.
func Read(t testing.TB, cfg kafka.Config, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted())}, cfg.ClientOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d records after %v", topic, len(out), n, timeout)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out[:n]
}

// Get fetches url until it answers want or timeout passes, and returns the
// last body; the test fails if want never came.
func Get(t testing.TB, url string, want int, timeout time.Duration) string {
	t.Helper()
	return get(t, url, "", want, timeout)
}

// GetAs is Get with the bearer token tok, within 10 s.
func GetAs(t testing.TB, url, tok string, want int) string {
	t.Helper()
	return get(t, url, tok, want, 10*time.Second)
}

func get(t testing.TB, url, tok string, want int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want && rerr == nil {
				return string(b)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: want %d, last answer %s", url, want, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
