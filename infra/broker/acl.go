package broker

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACL is one allow rule, in the words of kafka-acls.sh. It is an alias of
// a struct type, the same as services/settlement.ACL, so the
// partner ACLs settlement defines are given here as they are (and the
// broker imports no service).
type ACL = struct {
	Principal string // "User:<name>"; ignored: a User's ACLs are its own
	Resource  string // "topic", "group", "transactional-id", "cluster"
	Name      string
	Pattern   string // "literal" (or "") or "prefixed"
	Operation string // "Read", "Write", "Describe", "All", ...
}

// User is a SASL/SCRAM-SHA-512 user of the broker. With any user
// configured, the broker requires SASL and enforces ACLs: a Super user may
// do everything (minecart's services, as User:minecart in
// infra/kafka/init-acls.sh), any other user only what its ACLs allow.
type User struct {
	Name     string
	Password string
	Super    bool
	ACLs     []ACL
}

// userOpts are the kfake options of users: SASL, ACLs enforced, each user.
func userOpts(users []User) ([]kfake.Opt, error) {
	if len(users) == 0 {
		return nil, nil
	}
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs()}
	for _, u := range users {
		if u.Super {
			opts = append(opts, kfake.Superuser("SCRAM-SHA-512", u.Name, u.Password))
			continue
		}
		acls, err := kfakeACLs(u.ACLs)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.Name, err)
		}
		opts = append(opts, kfake.User("SCRAM-SHA-512", u.Name, u.Password, acls...))
	}
	return opts, nil
}

// kfakeACLs converts ACLs to kfake's seed ACLs.
func kfakeACLs(acls []ACL) ([]kfake.ACL, error) {
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
