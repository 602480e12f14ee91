package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/minecart/minecart/pipelines"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the topics of specs that do not exist yet: their
// partition count, cleanup.policy=compact when Compacted, retention.ms from
// Retention (-1, kept forever, when Retention is 0 and the topic is not
// compacted). Existing topics are left alone, but one with fewer partitions
// than its spec is an error (co-partitioned stages rely on the count).
// Calling it again is harmless.
func EnsureTopics(ctx context.Context, brokers []string, specs []pipelines.TopicSpec) error {
	return EnsureTopicsWith(ctx, Config{Brokers: brokers}, specs)
}

// EnsureTopicsWith is EnsureTopics with the connection settings of cfg
// (Config.ClientOptions: TLS, SASL), for brokers that need them.
func EnsureTopicsWith(ctx context.Context, cfg Config, specs []pipelines.TopicSpec) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(cfg.withDefaults().baseOpts()...)
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	defer cl.Close()
	return ensureTopics(ctx, kadm.NewClient(cl), specs)
}

func ensureTopics(ctx context.Context, adm *kadm.Client, specs []pipelines.TopicSpec) error {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if s.Name == "" || s.Partitions < 1 {
			return fmt.Errorf("ensure topics: bad spec %+v", s)
		}
		names = append(names, s.Name)
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var errs []error
	for _, s := range specs {
		if d, ok := existing[s.Name]; ok && d.Err == nil {
			if n := int32(len(d.Partitions)); n < s.Partitions {
				errs = append(errs, fmt.Errorf("topic %s has %d partitions, want %d", s.Name, n, s.Partitions))
			}
			continue
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, -1, topicConfigs(s), s.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w %s", s.Name, err, resp.ErrMessage))
		}
	}
	return errors.Join(errs...)
}

func topicConfigs(s pipelines.TopicSpec) map[string]*string {
	c := map[string]*string{}
	if s.Compacted {
		c["cleanup.policy"] = kadm.StringPtr("compact")
	}
	switch {
	case s.Retention > 0:
		c["retention.ms"] = kadm.StringPtr(strconv.FormatInt(s.Retention.Milliseconds(), 10))
	case !s.Compacted:
		c["retention.ms"] = kadm.StringPtr("-1")
	}
	return c
}

// ListTopics returns the names of the cluster's topics that match keeps
// (all when match is nil), sorted.
func ListTopics(ctx context.Context, cfg Config, match func(string) bool) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(cfg.withDefaults().baseOpts()...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var out []string
	for _, name := range td.Names() {
		if match == nil || match(name) {
			out = append(out, name)
		}
	}
	return out, nil
}
