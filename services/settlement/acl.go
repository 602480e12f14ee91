package settlement

import "github.com/minecart/minecart/pipelines"

// PartnerUser is the SASL/SCRAM user name of partner.
func PartnerUser(partner string) string { return "partner-" + partner }

// PartnerGroupPrefix prefixes the consumer groups partner may use:
// "partner-<partner>/". The slash, which no partner id contains
// (ValidID), ends the prefix, so no partner's prefix is a prefix of
// another's groups ("partner-acme" would also match "partner-acme-2/...",
// the groups of partner "acme-2").
func PartnerGroupPrefix(partner string) string { return "partner-" + partner + "/" }

// PartnerTopics are the topics a partner needs: its redemptions topic
// (orders, kept forever like the status topic) and its campaigns topic
// (the bonuses its campaigns paid, kept forever).
func PartnerTopics(partner string) []pipelines.TopicSpec {
	return []pipelines.TopicSpec{{
		Name: pipelines.PartnerRedemptionsTopic(partner), Partitions: 1,
		Doc: "settlement writes confirmed redemptions (orders) of partner " + partner + "; the partner reads",
	}, {
		Name: pipelines.PartnerCampaignsTopic(partner), Partitions: 1,
		Doc: "settlement writes the settled bonuses of partner " + partner + "'s campaigns; the partner reads",
	}}
}

// ACL is one Kafka ACL binding (allow), in the words of kafka-acls.sh. It
// is an alias of the same struct type as infra/broker.ACL, so the
// embedded broker takes PartnerACLs as they are without either package
// importing the other.
type ACL = struct {
	Principal string // "User:<name>"
	Resource  string // "topic", "group", "transactional-id", "cluster"
	Name      string
	Pattern   string // "literal" or "prefixed"
	Operation string // "Read", "Write", "Describe", ...
}

// PartnerACLs is everything partner's user (PartnerUser) may do
// (allow ACLs; with ACLs enforced, everything else is denied): read the
// settled-credits topic, its own redemptions and campaigns topics and the ledger's
// blocks and entries topics (the book it verifies and replicates: issue
// 16), write acknowledgements, and use consumer groups named
// partner-<partner>/*. Telemetry, the device registry, the ledger's
// requests and state and other partners' orders stay out of reach. It is the one definition: infra/kafka/init-acls.sh grants exactly
// this list on the production cluster (TestPartnerDocs checks it) and the
// embedded broker enforces it (infra/broker, User.ACLs).
func PartnerACLs(partner string) []ACL {
	p := "User:" + PartnerUser(partner)
	return []ACL{
		{p, "topic", pipelines.TopicRewardCredits, "literal", "Read"},
		{p, "topic", pipelines.TopicRewardCredits, "literal", "Describe"},
		{p, "topic", pipelines.PartnerRedemptionsTopic(partner), "literal", "Read"},
		{p, "topic", pipelines.PartnerRedemptionsTopic(partner), "literal", "Describe"},
		{p, "topic", pipelines.PartnerCampaignsTopic(partner), "literal", "Read"},
		{p, "topic", pipelines.PartnerCampaignsTopic(partner), "literal", "Describe"},
		{p, "topic", pipelines.TopicLedgerBlocks, "literal", "Read"},
		{p, "topic", pipelines.TopicLedgerBlocks, "literal", "Describe"},
		{p, "topic", pipelines.TopicLedgerEntries, "literal", "Read"},
		{p, "topic", pipelines.TopicLedgerEntries, "literal", "Describe"},
		{p, "topic", pipelines.TopicLedgerCheckpoints, "literal", "Read"},
		{p, "topic", pipelines.TopicLedgerCheckpoints, "literal", "Describe"},
		{p, "topic", pipelines.TopicPartnerAcks, "literal", "Write"},
		{p, "topic", pipelines.TopicPartnerAcks, "literal", "Describe"},
		{p, "group", PartnerGroupPrefix(partner), "prefixed", "Read"},
	}
}
