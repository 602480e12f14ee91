package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	pkafka "github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/settlement"
)

// TestUsersAcrossRestart: on one data directory, the users and ACLs of
// every start are those of its Config.Users, whatever the directory held:
// a first start without users, then users (the services' and partners
// acme and beta), then acme's password rotated, beta removed and zeta
// added. kfake saves its users and ACLs in sasl.json and acls.json of the
// directory (the files Start removes); the test checks they are there.
func TestUsersAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc := broker.User{Name: "minecart", Password: "svc-pw", Super: true}
	partner := func(id, pass string) broker.User {
		return broker.User{Name: settlement.PartnerUser(id), Password: pass, ACLs: settlement.PartnerACLs(id)}
	}
	start := func(users ...broker.User) *broker.Broker {
		t.Helper()
		b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: kafkatest.Logger(), Users: users})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stop := func(b *broker.Broker) {
		t.Helper()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	topics := []string{pipelines.TopicRewardCredits, pipelines.TopicTelemetryClean}
	for _, p := range []string{"acme", "beta", "zeta"} {
		topics = append(topics, pipelines.PartnerRedemptionsTopic(p))
	}

	// A first start without users: no SASL.
	b := start()
	var specs []pipelines.TopicSpec
	for _, tp := range topics {
		specs = append(specs, pipelines.TopicSpec{Name: tp, Partitions: 1})
	}
	if err := pkafka.EnsureTopicsWith(ctx, pkafka.Config{Brokers: b.Addrs()}, specs); err != nil {
		t.Fatal(err)
	}
	stop(b)

	// Then with users.
	b = start(svc, partner("acme", "acme-pw"), partner("beta", "beta-pw"))
	addrs := b.Addrs()
	wantVisible(ctx, t, addrs, "minecart", "svc-pw", topics...)
	wantVisible(ctx, t, addrs, "partner-acme", "acme-pw", pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("acme"))
	wantVisible(ctx, t, addrs, "partner-beta", "beta-pw", pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("beta"))
	stop(b)
	for file, user := range map[string]string{"sasl.json": "partner-beta", "acls.json": "User:partner-beta"} {
		saved, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("kfake's saved users and ACLs: %v", err)
		}
		if !strings.Contains(string(saved), user) {
			t.Fatalf("%s does not name %s: %s", file, user, saved)
		}
	}

	// acme's password rotated, beta removed, zeta added.
	b = start(svc, partner("acme", "acme-pw2"), partner("zeta", "zeta-pw"))
	defer stop(b)
	addrs = b.Addrs()
	wantVisible(ctx, t, addrs, "minecart", "svc-pw", topics...)
	wantVisible(ctx, t, addrs, "partner-acme", "acme-pw2", pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("acme"))
	wantVisible(ctx, t, addrs, "partner-zeta", "zeta-pw", pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("zeta"))
	for _, u := range [][2]string{{"partner-acme", "acme-pw"}, {"partner-beta", "beta-pw"}} {
		// kfake refuses a login by closing the connection (EOF).
		if _, err := metadata(ctx, addrs, u[0], u[1], topics); err == nil {
			t.Errorf("%s logged in with password %s", u[0], u[1])
		}
	}
	// beta's ACLs are gone with it, none is left twice.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.SASL(scram.Auth{User: "minecart", Pass: "svc-pw"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			n[a.Principal]++
		}
	}
	want := len(settlement.PartnerACLs("acme"))
	if n["User:partner-acme"] != want || n["User:partner-zeta"] != want || len(n) != 2 {
		t.Errorf("ACLs by principal %v, want %d for each of partner-acme and partner-zeta", n, want)
	}
}

// wantVisible checks that user sees exactly the topics visible among
// those of TestUsersAcrossRestart (Metadata: the others answer
// TOPIC_AUTHORIZATION_FAILED).
func wantVisible(ctx context.Context, t *testing.T, addrs []string, user, pass string, visible ...string) {
	t.Helper()
	all := []string{pipelines.TopicRewardCredits, pipelines.TopicTelemetryClean}
	for _, p := range []string{"acme", "beta", "zeta"} {
		all = append(all, pipelines.PartnerRedemptionsTopic(p))
	}
	resp, err := metadata(ctx, addrs, user, pass, all)
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	for _, tp := range resp.Topics {
		name := *tp.Topic
		err := kerr.ErrorForCode(tp.ErrorCode)
		switch want := slices.Contains(visible, name); {
		case want && err != nil:
			t.Errorf("%s: topic %s: %v", user, name, err)
		case !want && err != kerr.TopicAuthorizationFailed:
			t.Errorf("%s: topic %s: %v, want %v", user, name, err, kerr.TopicAuthorizationFailed)
		}
	}
}

// metadata asks the first broker for the metadata of topics as user.
func metadata(ctx context.Context, addrs []string, user, pass string, topics []string) (*kmsg.MetadataResponse, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	for _, tp := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A seed broker's Request is not retried: a refused login is the error.
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// TestValidateUsers: users need names, passwords, valid ACLs and at least
// one Super user.
func TestValidateUsers(t *testing.T) {
	svc := broker.User{Name: "minecart", Password: "pw", Super: true}
	acme := broker.User{Name: "partner-acme", Password: "pw", ACLs: settlement.PartnerACLs("acme")}
	for _, users := range [][]broker.User{
		{acme},
		{{Name: "minecart", Super: true}},
		{svc, {Name: "x", Password: "pw", ACLs: []broker.ACL{{Resource: "table", Name: "t", Operation: "Read"}}}},
	} {
		if err := (broker.Config{Users: users}).Validate(); err == nil {
			t.Errorf("users %+v: no error", users)
		}
	}
	if err := (broker.Config{Users: []broker.User{svc, acme}}).Validate(); err != nil {
		t.Errorf("users with a Super user: %v", err)
	}
}
