package campaign

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/minecart/minecart/services/ledger"
)

// ErrAction marks a campaign action the book's state refuses.
var ErrAction = errors.New("campaign action refused")

// State is what the writer and the auditor need of the book's campaign
// state (ledger.Book implements it).
type State interface {
	PartnerKey(partner string) []byte
	Campaign(id string) (ledger.CampaignInfo, bool)
}

// CheckAction checks a campaign entry against the book before it is
// appended and returns the compiled rule of a submit (nil otherwise):
// the key's shape; a submit's definition (it decodes, names this partner
// and campaign, hashes to rule_hash, compiles), its signature under the
// partner's registered key and a campaign id not taken; an action's
// signature, rule hash and a status it changes.
func CheckAction(st State, e *ledger.Entry) (*Rule, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s %q: %s: %w", e.Action, e.ID, fmt.Sprintf(format, a...), ErrAction)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if e.Kind != ledger.KindCampaign {
		return nil, bad("kind %s", e.Kind)
	}
	partner, _, ok := strings.Cut(e.Campaign, "/")
	if !ok || partner != e.Partner {
		return nil, bad("campaign %q is not the partner's %q", e.Campaign, e.Partner)
	}
	switch e.Action {
	case ledger.ActionKey:
		if e.ID != KeyID(e.Partner, e.PublicKey) || e.Campaign != e.Partner+"/-" {
			return nil, bad("request id or campaign is not the key's")
		}
		return nil, nil
	case ledger.ActionSubmit:
		if e.ID != SubmitID(e.Campaign) {
			return nil, bad("request id, want %q", SubmitID(e.Campaign))
		}
		if _, taken := st.Campaign(e.Campaign); taken {
			return nil, bad("campaign %q exists", e.Campaign)
		}
		if h := sha256.Sum256(e.Definition); !bytes.Equal(h[:], e.RuleHash) {
			return nil, bad("rule hash is not SHA-256 of the definition")
		}
		d, err := ParseDefinition(e.Definition)
		if err != nil {
			return nil, err
		}
		if d.Partner != e.Partner || d.ID() != e.Campaign {
			return nil, bad("the definition is %q's campaign %q", d.Partner, d.ID())
		}
		if err := VerifySignature(e, st.PartnerKey(e.Partner)); err != nil {
			return nil, err
		}
		return Compile(d)
	default:
		ci, ok := st.Campaign(e.Campaign)
		if !ok {
			return nil, bad("no campaign %q", e.Campaign)
		}
		if !bytes.Equal(ci.RuleHash, e.RuleHash) {
			return nil, bad("rule hash is not the campaign's")
		}
		if !strings.HasPrefix(e.ID, e.Action+"/"+e.Campaign+"/") || len(e.ID) == len(e.Action+"/"+e.Campaign+"/") {
			return nil, bad("request id, want %s/<campaign>/<nonce>", e.Action)
		}
		if err := VerifySignature(e, st.PartnerKey(e.Partner)); err != nil {
			return nil, err
		}
		if ledger.NextStatus(ci.Status, e.Action) == ci.Status {
			return nil, bad("campaign %q is %s", e.Campaign, ci.Status)
		}
		return nil, nil
	}
}
