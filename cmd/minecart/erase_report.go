package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// The erasure report: what `minecart accounts erase` cleared, and what it
// could not reach and when that expires (docs/ledger.md, "What an
// erasure reaches, and when the rest expires").

// ErasureReport is the record of one erasure (`--report FILE`, JSON; the
// command also prints it). It names the owner: it is the operator's record
// that the right was exercised, kept by the operator, never replicated.
type ErasureReport struct {
	Owner    string    `json:"owner"`
	ErasedAt time.Time `json:"erased_at"` // when the command started (UTC, ms)
	Reason   string    `json:"reason"`
	// KeysDestroyed are the pseudonyms whose keys the ledger tombstoned
	// (kind 8 entries name them): every leaf and every partner record that
	// names them is unlinkable from then on.
	KeysDestroyed []string `json:"keys_destroyed"`
	// VehiclesUnbound are the vehicles unbound from the owner
	// (tombstones on minecart.accounts).
	VehiclesUnbound   []string `json:"vehicles_unbound"`
	CredentialRemoved bool     `json:"credential_removed"`
	// ClickHouseRows are, by table, the rows naming the owner or a vehicle
	// that were deleted (counted before the DELETE); nil without a DSN.
	ClickHouseRows map[string]uint64 `json:"clickhouse_rows"`
	// NotReached are the Kafka topics that may still hold the owner's or
	// the vehicles' ids in clear, with the time by which retention has
	// deleted every record written before ErasedAt.
	NotReached []TopicExpiry `json:"not_reached"`
}

// TopicExpiry is one topic an erasure cannot rewrite.
type TopicExpiry struct {
	Topic         string `json:"topic"`
	Holds         string `json:"holds"`          // what it may name in clear
	CleanupPolicy string `json:"cleanup_policy"` // the topic's cleanup.policy
	RetentionMs   int64  `json:"retention_ms"`   // the topic's retention.ms (-1: kept forever)
	SegmentMs     int64  `json:"segment_ms"`     // the topic's segment.ms
	// ExpiresBy is ErasedAt + retention.ms + segment.ms (RFC 3339, UTC),
	// or "never" when retention.ms is -1, or "compaction" for a
	// compacted topic (a record goes when a later record of its key does),
	// or "shredded" for a topic whose records are sealed under their
	// identity's key (docs/privacy.md): the destroyed keys made them
	// unreadable at once; erasure-check counts what it still holds in
	// clear (records written before shredding existed).
	ExpiresBy string `json:"expires_by"`
	// EndOffsets are the topic's end offsets by partition when the keys
	// were destroyed: every record below them was written before the
	// erasure. `minecart accounts erasure-check` compares them with the
	// log start offsets to verify that retention has deleted them.
	EndOffsets map[int32]int64 `json:"end_offsets"`
}

// ErasureTopics are the topics an erasure does not rewrite and that may
// name an owner or a vehicle in clear, with what they hold. The
// partner-readable topics (credits, partner orders and campaigns, blocks,
// entries, checkpoints) are not here: they name no one in clear
// (docs/partners.md, "Nothing personal"), and an erasure makes their
// pseudonyms unlinkable.
var ErasureTopics = []struct {
	Topic, Holds string
	Shredded     bool // sealed under the identity's key (docs/privacy.md)
}{
	{pipelines.TopicTelemetryRaw, "vehicle id (key), positions", false},
	{pipelines.TopicTelemetryClean, "vehicle id (key), positions", false},
	{pipelines.TopicLateEvents, "vehicle id, positions", false},
	{pipelines.TopicFingerprints, "vehicle id, trip fingerprints", false},
	{pipelines.TopicReplayVerdicts, "vehicle id (key)", false},
	{pipelines.TopicDeadLetter, "rejected payloads: any id, positions", false},
	{pipelines.TopicScores, "sealed scores under the vehicle's pseudonym: nothing in clear but records written before shredding", true},
	{pipelines.TopicLedgerRequests, "account and vehicle ids of debits, adjustments, erasure requests", false},
	{pipelines.TopicRedemptions, "owner (key and value)", false},
	{pipelines.TopicRedemptionStatus, "statuses sealed under the owner account's pseudonym, or, for an account without a key, with owner, customer and idempotency key emptied: nothing in clear but records written before shredding", true},
	{pipelines.TopicTransfers, "account ids", false},
	{pipelines.TopicIngestChangelog, "vehicle ids of the dedup state", false},
	{pipelines.TopicScoringChangelog, "vehicle ids of open windows", false},
	{pipelines.TopicLedgerChangelog, "score ids <vehicle>/<date> of pending credits", false},
	{pipelines.TopicSettlementLog, "the owner's balance and redemptions under the account id", false},
}

// topicExpiries reads the cleanup and retention configs of ErasureTopics
// from the broker and computes each expiry from erasedAt.
func topicExpiries(ctx context.Context, cfg kafka.Config, erasedAt time.Time) ([]TopicExpiry, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("topic configs: %w", err)
	}
	defer cl.Close()
	names := make([]string, len(ErasureTopics))
	for i, t := range ErasureTopics {
		names[i] = t.Topic
	}
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topic configs: %w", err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	out := make([]TopicExpiry, 0, len(names))
	for _, t := range ErasureTopics {
		rc, err := rcs.On(t.Topic, nil)
		if err != nil || rc.Err != nil {
			continue // a topic this deployment does not have
		}
		x := TopicExpiry{Topic: t.Topic, Holds: t.Holds, CleanupPolicy: "delete", RetentionMs: 604800000, SegmentMs: 604800000}
		for _, c := range rc.Configs {
			switch c.Key {
			case "cleanup.policy":
				x.CleanupPolicy = c.MaybeValue()
			case "retention.ms":
				x.RetentionMs, _ = strconv.ParseInt(c.MaybeValue(), 10, 64)
			case "segment.ms":
				x.SegmentMs, _ = strconv.ParseInt(c.MaybeValue(), 10, 64)
			}
		}
		x.ExpiresBy = expiresBy(x, erasedAt)
		if t.Shredded {
			x.ExpiresBy = "shredded"
		}
		x.EndOffsets = map[int32]int64{}
		for p, o := range ends[t.Topic] {
			if o.Err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t.Topic, p, o.Err)
			}
			x.EndOffsets[p] = o.Offset
		}
		out = append(out, x)
	}
	return out, nil
}

// expiresBy is when retention has deleted every record of topic x written
// before erasedAt (with a timestamp no later than erasedAt): a segment is
// deleted once its newest record is older than retention.ms, and the
// active segment rolls at the latest segment.ms after it was opened, so
// erasedAt + retention.ms + segment.ms (plus the broker's
// log.retention.check.interval.ms, 5 minutes by default).
func expiresBy(x TopicExpiry, erasedAt time.Time) string {
	switch {
	case x.CleanupPolicy == "compact":
		return "compaction"
	case x.RetentionMs < 0:
		return "never"
	}
	return erasedAt.Add(time.Duration(x.RetentionMs+x.SegmentMs) * time.Millisecond).UTC().Format(time.RFC3339)
}

// print writes the report for a person.
func (r *ErasureReport) print(w io.Writer) {
	fmt.Fprintf(w, "not reached by this erasure (Kafka topics that may name the owner or its vehicles in clear; expiry = erased_at %s + retention.ms + segment.ms):\n", r.ErasedAt.Format(time.RFC3339))
	for _, x := range r.NotReached {
		fmt.Fprintf(w, "  %-34s %-8s retention.ms=%-11d expires by %-20s (%s)\n", x.Topic, x.CleanupPolicy, x.RetentionMs, x.ExpiresBy, x.Holds)
	}
}

// write saves the report as JSON to path (0600).
func (r *ErasureReport) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// TopicCheck is what erasure-check finds for one topic of a report.
type TopicCheck struct {
	Topic string
	// Left counts the records written before the erasure that are still
	// in the log (end offset at the erasure minus the log start offset,
	// summed over partitions; transaction markers included).
	Left      int64
	ExpiresBy string
	// Clear counts, for a shredded topic, the records written before the
	// erasure that are not sealed and not identity-free (a scoring
	// watermark, an anonymous redemption status): records in clear from
	// before shredding existed.
	Clear int64
}

// checkErasure compares the end offsets rep recorded with the topics'
// log start offsets now: a topic whose every partition starts at or after
// its recorded end holds nothing written before the erasure any more.
func checkErasure(ctx context.Context, cfg kafka.Config, rep *ErasureReport) ([]TopicCheck, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("erasure check: %w", err)
	}
	defer cl.Close()
	names := make([]string, 0, len(rep.NotReached))
	for _, x := range rep.NotReached {
		names = append(names, x.Topic)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	out := make([]TopicCheck, 0, len(names))
	for _, x := range rep.NotReached {
		c := TopicCheck{Topic: x.Topic, ExpiresBy: x.ExpiresBy}
		for p, end := range x.EndOffsets {
			o, ok := starts.Lookup(x.Topic, p)
			if !ok || o.Err != nil {
				return nil, fmt.Errorf("start offset of %s/%d: %v", x.Topic, p, o.Err)
			}
			if o.Offset < end {
				c.Left += end - o.Offset
			}
		}
		if x.ExpiresBy == "shredded" {
			if c.Clear, err = countClear(ctx, cfg, x); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// countClear reads a shredded topic below the end offsets of the report
// and counts the records that are neither sealed (minecart.shred.Sealed)
// nor identity-free (identityFree).
func countClear(ctx context.Context, cfg kafka.Config, x TopicExpiry) (int64, error) {
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	serde := cfg.Serde
	if serde == nil {
		serde = schemas.SingleObject()
	}
	var n int64
	for p, end := range x.EndOffsets {
		err := rd.Read(ctx, x.Topic, p, 0, end, func(r pipelines.Record) error {
			if !identityFree(serde, r.Value) {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("read %s/%d: %w", x.Topic, p, err)
		}
	}
	return n, nil
}

// identityFree reports whether a record of a shredded topic names no one
// in clear: sealed, a scoring Watermark, or a redemption status with its
// owner, customer and idempotency key emptied (an account without a key,
// docs/privacy.md).
func identityFree(serde *schemas.Serde, v []byte) bool {
	name, err := serde.Name(v)
	switch {
	case err != nil:
		return false
	case name == schemas.Sealed || name == schemas.Watermark:
		return true
	case name == schemas.Redemption:
		var r avro.Redemption
		return serde.Unmarshal(v, &r) == nil && r.Owner == "" && r.Customer == "" && r.IdempotencyKey == ""
	}
	return false
}

// readReport loads a report written by --report.
func readReport(path string) (*ErasureReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep ErasureReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("erasure report %s: %w", path, err)
	}
	return &rep, nil
}

// erasureCheck prints, for each topic of the report, whether retention
// has deleted what it held before the erasure; with requireGone, any
// record left is an error.
func erasureCheck(ctx context.Context, a *admin, path string, requireGone bool, w io.Writer) error {
	rep, err := readReport(path)
	if err != nil {
		return err
	}
	cs, err := checkErasure(ctx, a.cfg, rep)
	if err != nil {
		return err
	}
	left := 0
	for _, c := range cs {
		if c.ExpiresBy == "shredded" {
			if c.Clear == 0 {
				fmt.Fprintf(w, "%-34s shredded (%d records from before the erasure, every one sealed or naming no one)\n", c.Topic, c.Left)
				continue
			}
			left++
			fmt.Fprintf(w, "%-34s shredded, but %d records from before the erasure are in clear (written before shredding; kept forever)\n", c.Topic, c.Clear)
			continue
		}
		if c.Left == 0 {
			fmt.Fprintf(w, "%-34s gone\n", c.Topic)
			continue
		}
		left++
		fmt.Fprintf(w, "%-34s %d records from before the erasure left (expires by %s)\n", c.Topic, c.Left, c.ExpiresBy)
	}
	fmt.Fprintf(w, "erasure of %s at %s: %d of %d topics still hold records from before it\n", rep.Owner, rep.ErasedAt.Format(time.RFC3339), left, len(cs))
	if requireGone && left > 0 {
		return fmt.Errorf("%d topics still hold records from before the erasure", left)
	}
	return nil
}
