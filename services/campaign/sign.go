package campaign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// signContext opens every message a partner signs, so a campaign signature
// is never valid for anything else.
const signContext = "minecart campaign signature v1\n"

// SignedBytes is the message a partner signs for a campaign action: the
// context line, then action, campaign id, rule hash, request id and
// definition (empty but for submit), each as a 4-byte big-endian length
// and the bytes.
func SignedBytes(action, campaign string, ruleHash []byte, requestID string, definition []byte) []byte {
	b := []byte(signContext)
	for _, f := range [][]byte{[]byte(action), []byte(campaign), ruleHash, []byte(requestID), definition} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// ErrSignature marks a campaign action whose signature does not verify.
var ErrSignature = errors.New("campaign signature does not verify")

// Request ids: one submit per campaign, an action per nonce, a key
// registration per key.
func SubmitID(campaign string) string                { return "submit/" + campaign }
func ActionID(action, campaign, nonce string) string { return action + "/" + campaign + "/" + nonce }
func KeyID(partner string, pub []byte) string {
	s := sha256.Sum256(pub)
	return "key/" + partner + "/" + hex.EncodeToString(s[:16])
}

// Submit makes the signed submit entry of a definition.
func Submit(d Definition, priv ed25519.PrivateKey, requestedAtMs int64) ledger.Entry {
	def := d.Canonical()
	h := sha256.Sum256(def)
	id := SubmitID(d.ID())
	return ledger.Entry{
		Kind: ledger.KindCampaign, ID: id, Partner: d.Partner, Campaign: d.ID(), Action: ledger.ActionSubmit,
		RuleHash: h[:], Definition: def, RequestedAtMs: requestedAtMs,
		Signature: ed25519.Sign(priv, SignedBytes(ledger.ActionSubmit, d.ID(), h[:], id, def)),
	}
}

// Act makes the signed pause, resume or end entry of a campaign.
func Act(action, partner, campaign string, ruleHash []byte, nonce string, priv ed25519.PrivateKey, requestedAtMs int64) ledger.Entry {
	id := ActionID(action, campaign, nonce)
	return ledger.Entry{
		Kind: ledger.KindCampaign, ID: id, Partner: partner, Campaign: campaign, Action: action,
		RuleHash: ruleHash, RequestedAtMs: requestedAtMs,
		Signature: ed25519.Sign(priv, SignedBytes(action, campaign, ruleHash, id, nil)),
	}
}

// RegisterKey makes the key entry of a partner's public key (an operator's
// act: it carries no signature).
func RegisterKey(partner string, pub ed25519.PublicKey, requestedAtMs int64) ledger.Entry {
	return ledger.Entry{
		Kind: ledger.KindCampaign, ID: KeyID(partner, pub), Partner: partner, Campaign: partner + "/-",
		Action: ledger.ActionKey, PublicKey: pub, RequestedAtMs: requestedAtMs,
	}
}

// VerifySignature checks a campaign entry's signature against the
// partner's key.
func VerifySignature(e *ledger.Entry, pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%s %q: partner %q has no key: %w", e.Action, e.ID, e.Partner, ErrSignature)
	}
	if !ed25519.Verify(pub, SignedBytes(e.Action, e.Campaign, e.RuleHash, e.ID, e.Definition), e.Signature) {
		return fmt.Errorf("%s %q of partner %q: %w", e.Action, e.ID, e.Partner, ErrSignature)
	}
	return nil
}

// Request is the ledger request of a campaign entry (the record the API
// and the CLI write to the ledger's requests topic).
func Request(e *ledger.Entry) *avro.CampaignRequest {
	return &avro.CampaignRequest{
		RequestID: e.ID, Partner: e.Partner, Campaign: e.Campaign, Action: avro.CampaignAction(e.Action),
		Definition: e.Definition, RuleHash: e.RuleHash, PublicKey: e.PublicKey, Signature: e.Signature,
		RequestedAt: time.UnixMilli(e.RequestedAtMs).UTC(),
	}
}

// FromRequest is the campaign entry a request asks for.
func FromRequest(r *avro.CampaignRequest) ledger.Entry {
	return ledger.Entry{
		Kind: ledger.KindCampaign, ID: r.RequestID, Partner: r.Partner, Campaign: r.Campaign, Action: string(r.Action),
		RuleHash: r.RuleHash, Definition: r.Definition, PublicKey: r.PublicKey, Signature: r.Signature,
		RequestedAtMs: r.RequestedAt.UnixMilli(),
	}
}
