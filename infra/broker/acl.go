package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
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

// securityFiles are the files of a data directory in which kfake persists
// its SASL users and its ACLs (persist.go, saveSASL and saveACLs). Start
// removes them when Config.Users is set: kfake reloads them in place of
// the seed users and never applies seed ACLs to a reloaded directory.
var securityFiles = []string{"sasl.json", "acls.json"}

// userOpts are the kfake options of users: SASL, ACLs enforced, and each
// user's credentials. The ACLs are created after the start (createACLs).
func userOpts(users []User) []kfake.Opt {
	if len(users) == 0 {
		return nil
	}
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs()}
	for _, u := range users {
		if u.Super {
			opts = append(opts, kfake.Superuser("SCRAM-SHA-512", u.Name, u.Password))
		} else {
			opts = append(opts, kfake.User("SCRAM-SHA-512", u.Name, u.Password))
		}
	}
	return opts
}

// createACLs creates the ACLs of every user that is not Super, through the
// admin API of the broker at addrs as the first Super user.
func createACLs(ctx context.Context, addrs []string, users []User) error {
	req := kmsg.NewPtrCreateACLsRequest()
	var admin *User
	for i, u := range users {
		if u.Super {
			if admin == nil {
				admin = &users[i]
			}
			continue
		}
		cs, err := aclCreations(u)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
		req.Creations = append(req.Creations, cs...)
	}
	if len(req.Creations) == 0 {
		return nil
	}
	if admin == nil {
		return errors.New("no Super user to create the ACLs")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.SASL(scram.Auth{User: admin.Name, Pass: admin.Password}.AsSha512Mechanism()))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create ACLs as %s: %w", admin.Name, err)
	}
	var errs []error
	for i, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			c := req.Creations[i]
			errs = append(errs, fmt.Errorf("create ACL %s %v %s %v: %w", c.Principal, c.ResourceType, c.ResourceName, c.Operation, err))
		}
	}
	if len(resp.Results) != len(req.Creations) {
		errs = append(errs, fmt.Errorf("create ACLs: %d results for %d ACLs", len(resp.Results), len(req.Creations)))
	}
	return errors.Join(errs...)
}

// aclCreations converts a user's ACLs to CreateACLs entries: allow, any
// host, principal User:<name>.
func aclCreations(u User) ([]kmsg.CreateACLsRequestCreation, error) {
	out := make([]kmsg.CreateACLsRequestCreation, 0, len(u.ACLs))
	for _, a := range u.ACLs {
		k := kmsg.NewCreateACLsRequestCreation()
		k.Principal, k.Host, k.ResourceName, k.PermissionType = "User:"+u.Name, "*", a.Name, kmsg.ACLPermissionTypeAllow
		switch a.Resource {
		case "topic":
			k.ResourceType = kmsg.ACLResourceTypeTopic
		case "group":
			k.ResourceType = kmsg.ACLResourceTypeGroup
		case "transactional-id":
			k.ResourceType = kmsg.ACLResourceTypeTransactionalId
		case "cluster":
			k.ResourceType = kmsg.ACLResourceTypeCluster
		default:
			return nil, fmt.Errorf("acl resource %q", a.Resource)
		}
		switch a.Pattern {
		case "literal", "":
			k.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
		case "prefixed":
			k.ResourcePatternType = kmsg.ACLResourcePatternTypePrefixed
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
