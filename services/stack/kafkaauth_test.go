package stack

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAnalystACLsInScript: infra/kafka/init-acls.sh grants the production
// analyst exactly the topics and group prefix of AnalystACLs, Read and
// Describe on each topic.
func TestAnalystACLsInScript(t *testing.T) {
	b, err := os.ReadFile("../../infra/kafka/init-acls.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	m := regexp.MustCompile(`(?s)for t in (.*?); do\s*\n\s*ka --add --allow-principal User:analyst --operation Read --operation Describe --topic "\$t"`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("init-acls.sh: no analyst topic loop")
	}
	got := strings.Fields(strings.ReplaceAll(m[1], "\\", " "))
	slices.Sort(got)
	want := slices.Clone(AnalystTopics)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("init-acls.sh analyst topics\n%v\nAnalystTopics\n%v", got, want)
	}
	if !strings.Contains(script, "--group "+AnalystGroupPrefix(AnalystUser)+" --resource-pattern-type prefixed") {
		t.Error("init-acls.sh: no analyst group prefix " + AnalystGroupPrefix(AnalystUser))
	}
	acls := AnalystACLs(AnalystUser)
	if len(acls) != 2*len(AnalystTopics)+1 {
		t.Fatalf("AnalystACLs: %d", len(acls))
	}
}
