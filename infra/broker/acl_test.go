package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	pkafka "github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/settlement"
)

// TestPartnerACLs runs the embedded broker with SASL/SCRAM and ACLs
// enforced, partner acme holding settlement's PartnerACLs, and checks,
// with the partner's client (kafka-go), that partner acme reads the
// credits topic and its own orders, writes acks and uses its consumer
// group, and is refused telemetry, other partners' orders and writes
// elsewhere.
func TestPartnerACLs(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: kafkatest.Logger(), Users: []broker.User{
		{Name: "minecart", Password: "svc-pw", Super: true},
		{Name: "partner-acme", Password: "acme-pw", ACLs: settlement.PartnerACLs("acme")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	addrs := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The services' user creates the topics and writes one record to each.
	sasl := kgo.SASL(kscram.Auth{User: "minecart", Pass: "svc-pw"}.AsSha512Mechanism())
	topics := []string{pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("acme"),
		pipelines.PartnerRedemptionsTopic("zeta"), pipelines.TopicPartnerAcks, pipelines.TopicTelemetryClean}
	var specs []pipelines.TopicSpec
	for _, tp := range topics {
		specs = append(specs, pipelines.TopicSpec{Name: tp, Partitions: 1})
	}
	if err := pkafka.EnsureTopicsWith(ctx, pkafka.Config{Brokers: addrs, ClientOptions: []kgo.Opt{sasl}}, specs); err != nil {
		t.Fatal(err)
	}
	svc, err := kgo.NewClient(kgo.SeedBrokers(addrs...), sasl)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, tp := range topics {
		if err := svc.ProduceSync(ctx, &kgo.Record{Topic: tp, Key: []byte("k"), Value: []byte("v-" + tp)}).FirstErr(); err != nil {
			t.Fatalf("service produce %s: %v", tp, err)
		}
	}

	mech, err := scram.Mechanism(scram.SHA512, "partner-acme", "acme-pw")
	if err != nil {
		t.Fatal(err)
	}
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Transport: &kafka.Transport{SASL: mech}, Timeout: 10 * time.Second}
	fetch := func(topic string) error {
		resp, err := cl.Fetch(ctx, &kafka.FetchRequest{Addr: cl.Addr, Topic: topic, Partition: 0, Offset: 0,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, IsolationLevel: kafka.ReadCommitted})
		if err != nil {
			return err
		}
		if resp.Error != nil {
			return resp.Error
		}
		r, err := resp.Records.ReadRecord()
		if err != nil {
			return fmt.Errorf("read record: %w", err)
		}
		buf := make([]byte, 64)
		n, _ := r.Value.Read(buf)
		if string(buf[:n]) != "v-"+topic {
			return fmt.Errorf("read %q", buf[:n])
		}
		return nil
	}
	for _, tp := range []string{pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic("acme")} {
		if err := fetch(tp); err != nil {
			t.Errorf("partner reads %s: %v", tp, err)
		}
	}
	// The acks topic is visible (Write implies Describe) but not readable.
	if err := fetch(pipelines.TopicPartnerAcks); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("partner reads acks: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}
	// Telemetry and other partners' orders are not even visible. kafka-go
	// answers "topic not found" (its Transport lists the topics the user
	// may describe), so the broker's own answer is checked with franz-go
	// as the same user: TOPIC_AUTHORIZATION_FAILED, and nothing consumed.
	partner, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.SASL(kscram.Auth{User: "partner-acme", Pass: "acme-pw"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer partner.Close()
	for _, tp := range []string{pipelines.TopicTelemetryClean, pipelines.PartnerRedemptionsTopic("zeta")} {
		if err := fetch(tp); err == nil {
			t.Errorf("partner (kafka-go) read %s", tp)
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, partner)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || kerr.ErrorForCode(resp.Topics[0].ErrorCode) != kerr.TopicAuthorizationFailed {
			t.Errorf("partner metadata of %s: error code %v, want TOPIC_AUTHORIZATION_FAILED", tp, resp.Topics)
		}
		cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(tp),
			kgo.SASL(kscram.Auth{User: "partner-acme", Pass: "acme-pw"}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cons.PollFetches(pctx)
		pcancel()
		cons.Close()
		var authErr bool
		fs.EachError(func(_ string, _ int32, err error) { authErr = authErr || errors.Is(err, kerr.TopicAuthorizationFailed) })
		if !authErr || fs.NumRecords() != 0 {
			t.Errorf("partner consuming %s: %d records, errors %v; want TOPIC_AUTHORIZATION_FAILED", tp, fs.NumRecords(), fs.Errors())
		}
	}
	produce := func(topic string) error {
		resp, err := cl.Produce(ctx, &kafka.ProduceRequest{Addr: cl.Addr, Topic: topic, Partition: 0,
			RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(kafka.Record{Value: kafka.NewBytes([]byte("ack"))})})
		if err != nil {
			return err
		}
		return resp.Error
	}
	if err := produce(pipelines.TopicPartnerAcks); err != nil {
		t.Errorf("partner writes acks: %v", err)
	}
	if err := produce(pipelines.TopicRewardCredits); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("partner writes credits: %v, want %v", err, kafka.TopicAuthorizationFailed)
	}
	if err := produce(pipelines.TopicTelemetryClean); err == nil {
		t.Error("partner wrote to telemetry")
	}

	// Consumer groups: partner-acme/* only.
	group := func(id string) error {
		dialer := &kafka.Dialer{Timeout: 10 * time.Second, SASLMechanism: mech}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, GroupID: id, Topic: pipelines.TopicRewardCredits, Dialer: dialer,
			MaxWait: 100 * time.Millisecond, JoinGroupBackoff: 100 * time.Millisecond})
		defer r.Close()
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		defer gcancel()
		_, err := r.FetchMessage(gctx)
		return err
	}
	if err := group("partner-acme/orders"); err != nil {
		t.Errorf("partner group partner-acme/orders: %v", err)
	}
	// Not another partner's ("acme-orders" would be a partner id too).
	if err := group("partner-acme-orders/x"); err == nil {
		t.Error("partner acme joined group partner-acme-orders/x")
	}
	if err := group("settlement"); err == nil {
		t.Error("partner joined group settlement")
	}
}
