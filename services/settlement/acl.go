package settlement

import "github.com/minecart/minecart/pipelines"

// ACL is one Kafka ACL binding, in the words of kafka-acls.sh.
type ACL struct {
	Principal string // "User:<name>"
	Resource  string // "topic", "group"
	Name      string
	Pattern   string // "literal" or "prefixed"
	Operation string // "Read", "Write", "Describe"
}

// PartnerUser is the SASL/SCRAM user name of partner.
func PartnerUser(partner string) string { return "partner-" + partner }

// PartnerGroupPrefix prefixes the consumer groups partner may use.
func PartnerGroupPrefix(partner string) string { return "partner-" + partner }

// PartnerACLs is everything partner's user may do (allow ACLs; with ACLs
// enforced, everything else is denied): read the settled-credits topic and
// its own redemptions topic, write acknowledgements, and use consumer
// groups named partner-<partner>*. Telemetry, the ledger's internals and
// other partners' orders stay out of reach. infra/kafka/init-acls.sh
// creates the same list on the production cluster.
func PartnerACLs(partner string) []ACL {
	p := "User:" + PartnerUser(partner)
	return []ACL{
		{p, "topic", pipelines.TopicRewardCredits, "literal", "Read"},
		{p, "topic", pipelines.TopicRewardCredits, "literal", "Describe"},
		{p, "topic", pipelines.PartnerRedemptionsTopic(partner), "literal", "Read"},
		{p, "topic", pipelines.PartnerRedemptionsTopic(partner), "literal", "Describe"},
		{p, "topic", pipelines.TopicPartnerAcks, "literal", "Write"},
		{p, "topic", pipelines.TopicPartnerAcks, "literal", "Describe"},
		{p, "group", PartnerGroupPrefix(partner), "prefixed", "Read"},
	}
}
