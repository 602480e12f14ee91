package stack

import (
	"fmt"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/settlement"
)

// The embedded broker requires SASL/SCRAM-SHA-512 (docs/security.md):
// Start generates the credentials of DefaultCredentials into
// <DataDir>/kafka/credentials.json (0600) on the first start and keeps them
// after, gives the broker those users with their ACLs (BrokerUsers) and
// connects its own stages as the superuser.

// Default users of the embedded broker.
const (
	SuperUser   = "minecart" // the stages, as User:minecart in infra/kafka/init-acls.sh
	AnalystUser = "analyst"
)

// DefaultCredentials are the users Start makes sure exist: the superuser,
// the read-only analyst and the simulated fleet's partner (SimPartner).
// Passwords are generated.
func DefaultCredentials() []broker.Credential {
	return []broker.Credential{
		{Name: SuperUser, Role: broker.RoleSuperuser},
		{Name: AnalystUser, Role: broker.RoleAnalyst},
		{Name: settlement.PartnerUser(SimPartner), Role: broker.RolePartner, Partner: SimPartner},
	}
}

// AnalystTopics are the topics the analyst role may read (Read, Describe):
// what analysts find in ClickHouse, as it flows. Never the device registry,
// raw telemetry (unvalidated uploads), the stages' changelogs (internal
// state) or the partners' orders.
var AnalystTopics = []string{
	pipelines.TopicTelemetryClean, pipelines.TopicDeadLetter, pipelines.TopicScores, pipelines.TopicLateEvents,
	pipelines.TopicLedgerBlocks, pipelines.TopicLedgerEntries, pipelines.TopicLedgerCheckpoints, pipelines.TopicRewardCredits,
	pipelines.TopicRedemptionStatus, pipelines.TopicStatements,
}

// AnalystGroupPrefix prefixes the consumer groups of analyst user name:
// "<name>/" (the slash ends the prefix, as for partners).
func AnalystGroupPrefix(name string) string { return name + "/" }

// AnalystACLs is everything an analyst user may do: read and describe
// AnalystTopics, and use its own consumer groups.
func AnalystACLs(name string) []broker.ACL {
	p := "User:" + name
	var out []broker.ACL
	for _, t := range AnalystTopics {
		out = append(out, broker.ACL{Principal: p, Resource: "topic", Name: t, Pattern: "literal", Operation: "Read"},
			broker.ACL{Principal: p, Resource: "topic", Name: t, Pattern: "literal", Operation: "Describe"})
	}
	return append(out, broker.ACL{Principal: p, Resource: "group", Name: AnalystGroupPrefix(name), Pattern: "prefixed", Operation: "Read"})
}

// BrokerUsers are the broker users of creds, each with the ACLs of its
// role.
func BrokerUsers(creds broker.Credentials) ([]broker.User, error) {
	out := make([]broker.User, 0, len(creds.Users))
	for _, c := range creds.Users {
		u := broker.User{Name: c.Name, Password: c.Password}
		switch c.Role {
		case broker.RoleSuperuser:
			u.Super = true
		case broker.RoleAnalyst:
			u.ACLs = AnalystACLs(c.Name)
		case broker.RolePartner:
			if err := settlement.ValidID(c.Partner); err != nil {
				return nil, fmt.Errorf("credentials: user %s: partner: %w", c.Name, err)
			}
			if c.Name != settlement.PartnerUser(c.Partner) {
				return nil, fmt.Errorf("credentials: partner %s: user %s, want %s", c.Partner, c.Name, settlement.PartnerUser(c.Partner))
			}
			u.ACLs = settlement.PartnerACLs(c.Partner)
		default:
			return nil, fmt.Errorf("credentials: user %s: role %q unknown", c.Name, c.Role)
		}
		out = append(out, u)
	}
	return out, nil
}

// SASL is the franz-go option that authenticates as c.
func SASL(c broker.Credential) kgo.Opt {
	return kgo.SASL(scram.Auth{User: c.Name, Pass: c.Password}.AsSha512Mechanism())
}

// credentials loads (or creates) the credentials of the broker's data
// directory kafkaDir, or generates fresh ones for a broker in memory.
func credentials(kafkaDir string) (broker.Credentials, error) {
	if kafkaDir != "" {
		return broker.LoadOrCreateCredentials(filepath.Join(kafkaDir, broker.CredentialsFile), DefaultCredentials())
	}
	c := broker.Credentials{Mechanism: broker.Mechanism, Users: DefaultCredentials()}
	for i := range c.Users {
		c.Users[i].Password = broker.NewPassword()
	}
	return c, nil
}
