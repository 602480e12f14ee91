package settlement

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestPartnerDocs keeps docs/partners.md and production honest: the
// schemas it shows are the files, its ACL table lists PartnerACLs, and
// infra/kafka/init-acls.sh grants each partner user exactly PartnerACLs
// (no more, no less).
func TestPartnerDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/partners.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"settlement_Redemption.avsc", "settlement_CreditSettled.avsc", "settlement_PartnerAck.avsc"} {
		b, err := os.ReadFile("../../schemas/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```json\n"+strings.TrimRight(string(b), "\n")+"\n```") {
			t.Errorf("docs/partners.md does not show %s as it is", f)
		}
	}
	want := PartnerACLs("$p")
	for _, a := range want {
		name := strings.ReplaceAll(a.Name, "$p", "<p>")
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/partners.md ACL table misses %s %s", a.Resource, name)
		}
	}
	script, err := os.ReadFile("../../infra/kafka/init-acls.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), `user="`+PartnerUser("$p")+`"`) {
		t.Errorf("init-acls.sh: partner user is not %s", PartnerUser("$p"))
	}
	got := scriptACLs(string(script), "User:"+PartnerUser("$p"), `"User:$user"`)
	if g, w := sorted(got), sorted(want); !reflect.DeepEqual(g, w) {
		t.Errorf("init-acls.sh grants a partner\n%s\nPartnerACLs:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func sorted(acls []ACL) []string {
	var out []string
	for _, a := range acls {
		out = append(out, fmt.Sprint(a))
	}
	slices.Sort(out)
	return out
}

// scriptACLs parses the kafka-acls.sh calls ("ka --add ...") of a shell
// script that allow principalArg, as ACLs of principal: one per operation.
func scriptACLs(script, principal, principalArg string) []ACL {
	var out []ACL
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "ka" || f[1] != "--add" || !slices.Contains(f, principalArg) {
			continue
		}
		var resource, name, pattern = "", "", "literal"
		var ops []string
		for i := 2; i+1 < len(f); i++ {
			switch v := strings.Trim(f[i+1], `"`); f[i] {
			case "--operation":
				ops = append(ops, v)
			case "--topic", "--group", "--transactional-id":
				resource, name = f[i][2:], v
			case "--resource-pattern-type":
				pattern = v
			}
		}
		for _, op := range ops {
			out = append(out, ACL{Principal: principal, Resource: resource, Name: name, Pattern: pattern, Operation: op})
		}
	}
	return out
}
