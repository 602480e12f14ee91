package settlement

import (
	"os"
	"strings"
	"testing"
)

// TestPartnerDocs keeps docs/partners.md honest: the schemas it shows are
// the files, and its ACL table and infra/kafka/init-acls.sh grant what
// PartnerACLs returns.
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
	script, err := os.ReadFile("../../infra/kafka/init-acls.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range PartnerACLs("$p") {
		name := strings.ReplaceAll(a.Name, "$p", "<p>")
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/partners.md ACL table misses %s %s", a.Resource, name)
		}
		var line string
		for _, l := range strings.Split(string(script), "\n") {
			if strings.Contains(l, "--"+a.Resource+" ") && (strings.Contains(l, " "+a.Name+" ") || strings.Contains(l, `"`+a.Name+`"`) ||
				strings.HasSuffix(l, " "+a.Name) || strings.Contains(l, `"partner-$p"`) && a.Resource == "group") {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, "--operation "+a.Operation) {
			t.Errorf("init-acls.sh does not grant %s on %s %s (line %q)", a.Operation, a.Resource, a.Name, line)
		}
	}
}
