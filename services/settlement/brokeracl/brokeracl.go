// Package brokeracl turns settlement's partner ACLs into options of the
// embedded broker (kfake), so the embedded broker enforces what
// infra/kafka/init-acls.sh sets up on the production cluster.
package brokeracl

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/minecart/minecart/services/settlement"
)

// ACLs converts settlement ACLs to kfake's seed ACLs.
func ACLs(acls []settlement.ACL) ([]kfake.ACL, error) {
	out := make([]kfake.ACL, 0, len(acls))
	for _, a := range acls {
		k := kfake.ACL{Principal: a.Principal, Name: a.Name, Allow: true, Host: "*"}
		switch a.Resource {
		case "topic":
			k.Resource = kmsg.ACLResourceTypeTopic
		case "group":
			k.Resource = kmsg.ACLResourceTypeGroup
		case "transactional-id":
			k.Resource = kmsg.ACLResourceTypeTransactionalId
		case "cluster":
			k.Resource = kmsg.ACLResourceTypeCluster
		default:
			return nil, fmt.Errorf("acl resource %q", a.Resource)
		}
		switch a.Pattern {
		case "literal", "":
			k.Pattern = kmsg.ACLResourcePatternTypeLiteral
		case "prefixed":
			k.Pattern = kmsg.ACLResourcePatternTypePrefixed
		default:
			return nil, fmt.Errorf("acl pattern %q", a.Pattern)
		}
		op, err := kmsg.ParseACLOperation(strings.ToLower(a.Operation))
		if err != nil {
			return nil, fmt.Errorf("acl operation %q: %w", a.Operation, err)
		}
		k.Operation = op
		out = append(out, k)
	}
	return out, nil
}

// PartnerUser is the kfake option that creates partner's SCRAM-SHA-512
// user with settlement.PartnerACLs(partner). Use it with kfake.EnableSASL
// and kfake.EnableACLs (and a kfake.Superuser for minecart's services).
func PartnerUser(partner, password string) (kfake.Opt, error) {
	acls, err := ACLs(settlement.PartnerACLs(partner))
	if err != nil {
		return nil, err
	}
	return kfake.User("SCRAM-SHA-512", settlement.PartnerUser(partner), password, acls...), nil
}
