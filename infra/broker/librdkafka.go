package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// librdkafka (kcat, confluent-kafka-python, node-rdkafka) before 2.10
// refuses to authenticate when a broker's ApiVersions lists SaslHandshake
// without version 0 ("SASL Handshake not supported by broker"): it tests
// the feature "SaslHandshake v0..v0" before it uses v1. kfake, like Kafka
// 4 (KIP-896), advertises SaslHandshake v1 only, so kcat 1.7 (librdkafka
// 2.0.2, Debian 12) could not log in to the embedded broker with SCRAM.
// saslCompat answers ApiVersions requests of librdkafka clients with
// kfake's own answer in which SaslHandshake starts at v0; librdkafka then
// authenticates with SaslHandshake v1 and SaslAuthenticate as with any
// broker (TestKcatSCRAM). Other clients get kfake's answer untouched.

// saslCompat installs the ApiVersions answer for librdkafka clients on c,
// built from kfake's own answer fetched as admin.
func saslCompat(ctx context.Context, c *kfake.Cluster, addrs []string, admin User) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.SASL(scram.Auth{User: admin.Name, Pass: admin.Password}.AsSha512Mechanism()))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "minecart", "1"
	own, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("api versions: %w", err)
	}
	if err := kerr.ErrorForCode(own.ErrorCode); err != nil {
		return fmt.Errorf("api versions: %w", err)
	}
	keys := slices.Clone(own.ApiKeys)
	for i := range keys {
		if keys[i].ApiKey == int16(kmsg.SASLHandshake) {
			keys[i].MinVersion = 0
		}
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := kreq.(*kmsg.ApiVersionsRequest)
		if r.ClientSoftwareName != "librdkafka" || r.Version != 3 {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = slices.Clone(keys)
		resp.SupportedFeatures = slices.Clone(own.SupportedFeatures)
		resp.FinalizedFeatures = slices.Clone(own.FinalizedFeatures)
		resp.FinalizedFeaturesEpoch = own.FinalizedFeaturesEpoch
		return resp, nil, true
	})
	return nil
}

// firstSuper is the first Super user of users (Validate requires one).
func firstSuper(users []User) User {
	for _, u := range users {
		if u.Super {
			return u
		}
	}
	return User{}
}
