package partner_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	kafkart "github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/stack"
)

// TestPartnerOnEmbeddedStack: the embedded stack of `minecart run`
// requires SASL/SCRAM, and a partner using its own generated credentials
// (read from <data-dir>/kafka/credentials.json, as -credentials does) with
// kafka-go, the partner example's client, reads its orders, the credits
// and the ledger's blocks and entries (the book its node verifies), and
// can neither read (nor write) minecart.devices, read raw or clean
// telemetry nor another partner's orders, nor join another partner's consumer group, also one
// whose name starts with its own ("partner-acme-2/...": the prefix overlap
// of a group ACL "partner-acme" without the slash). A kafka-go client
// without credentials gets nothing.
func TestPartnerOnEmbeddedStack(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	st, err := stack.Start(ctx, stack.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sim, err := fleet.New(fleet.Config{Seed: 3, Vehicles: 2, Days: 1, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ProvisionFleet(ctx, sim); err != nil { // the acme catalog creates its orders topic
		t.Fatal(err)
	}
	for _, p := range []string{"zeta", "acme-2"} {
		if err := kafkart.EnsureTopicsWith(ctx, st.Pipelines, settlement.PartnerTopics(p)); err != nil {
			t.Fatal(err)
		}
	}
	addr := kafka.TCP(st.Broker.Addrs()[0])

	b, err := os.ReadFile(filepath.Join(dir, "kafka", broker.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var creds broker.Credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}
	me, ok := creds.ByRole(broker.RolePartner, stack.SimPartner)
	if !ok {
		t.Fatalf("no partner %s in %s", stack.SimPartner, b)
	}
	mech, err := scram.Mechanism(scram.SHA512, me.Name, me.Password)
	if err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: addr, Timeout: 10 * time.Second, Transport: &kafka.Transport{SASL: mech}}
	fetch := func(c *kafka.Client, topic string) error {
		res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: kafka.FirstOffset,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, IsolationLevel: kafka.ReadCommitted})
		if err != nil {
			return err
		}
		return res.Error
	}

	anon := &kafka.Client{Addr: addr, Timeout: 5 * time.Second, Transport: &kafka.Transport{DialTimeout: 5 * time.Second}}
	if md, err := anon.Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
		t.Errorf("a client without credentials got metadata of %d topics", len(md.Topics))
	}
	if err := fetch(anon, pipelines.TopicRewardCredits); err == nil {
		t.Error("a client without credentials fetched the credits topic")
	}

	for _, topic := range []string{pipelines.TopicRewardCredits, pipelines.PartnerRedemptionsTopic(stack.SimPartner),
		pipelines.TopicLedgerBlocks, pipelines.TopicLedgerEntries} {
		if err := fetch(client, topic); err != nil {
			t.Errorf("partner %s reading %s: %v", stack.SimPartner, topic, err)
		}
	}
	for _, topic := range []string{pipelines.TopicDevices, pipelines.TopicTelemetryRaw, pipelines.TopicTelemetryClean,
		pipelines.PartnerRedemptionsTopic("zeta"), pipelines.PartnerRedemptionsTopic("acme-2"), pipelines.TopicSettlementLog} {
		if err := fetch(client, topic); !errors.Is(err, kafka.TopicAuthorizationFailed) {
			t.Errorf("partner %s reading %s: %v, want TOPIC_AUTHORIZATION_FAILED", stack.SimPartner, topic, err)
		}
	}

	// Nor provision a device (a rogue box for an existing vehicle).
	pres, err := client.Produce(ctx, &kafka.ProduceRequest{Topic: pipelines.TopicDevices, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte("rogue")), Value: kafka.NewBytes([]byte("x"))})})
	if err == nil {
		err = pres.Error
	}
	if err == nil { // kafka-go says "topic not found": its Transport lists only what the user may describe
		t.Errorf("partner wrote to %s", pipelines.TopicDevices)
	}

	join := func(group string) error {
		res, err := client.JoinGroup(ctx, &kafka.JoinGroupRequest{GroupID: group, SessionTimeout: 10 * time.Second,
			RebalanceTimeout: 10 * time.Second, ProtocolType: "consumer",
			Protocols: []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{pipelines.TopicRewardCredits}}}}})
		if err != nil {
			return err
		}
		if errors.Is(res.Error, kafka.MemberIDRequired) {
			return nil // allowed: the broker asks for a second join with the member id (KIP-394)
		}
		return res.Error
	}
	if err := join(settlement.PartnerGroupPrefix(stack.SimPartner) + pipelines.TopicRewardCredits); err != nil {
		t.Errorf("partner joining its own group: %v", err)
	}
	for _, g := range []string{"partner-acme-2/" + pipelines.TopicRewardCredits, "partner-zeta/x", "partner-acme", "settlement", "ingest-0"} {
		if err := join(g); !errors.Is(err, kafka.GroupAuthorizationFailed) {
			t.Errorf("partner joining group %q: %v, want GROUP_AUTHORIZATION_FAILED", g, err)
		}
	}
}
