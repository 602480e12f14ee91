package owner

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// cursor is the opaque position of a page. It is bound to the request it
// continues (Query: a hash of the vehicle and the parameters that shape the
// answer), so a cursor replayed against another request is refused instead
// of silently skipping rows.
type cursor struct {
	Query string `json:"q"`
	// track
	Mode   string `json:"m,omitempty"` // "raw" or "ds", fixed by the first page
	TimeMs int64  `json:"t,omitempty"` // raw: last point's (time, device, seq)
	Device string `json:"d,omitempty"`
	Seq    uint64 `json:"s,omitempty"`
	Bucket int64  `json:"b,omitempty"` // ds: last bucket returned
	Total  uint64 `json:"n,omitempty"` // points in range when the first page was read
	// reports
	Date string `json:"date,omitempty"` // last date returned
	// points
	Leaf     uint64 `json:"leaf,omitempty"` // last leaf index returned (entries go newest first)
	TreeSize uint64 `json:"ts,omitempty"`   // tree size the first page's proofs were made for
}

func queryKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // plain fields: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor decodes s ("" = first page, ok false) and checks it belongs
// to the query key.
func decodeCursor(s, key string) (c cursor, ok bool, err error) {
	if s == "" {
		return c, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false, badRequest("cursor: malformed")
	}
	if c.Query != key {
		return c, false, badRequest("cursor: belongs to another request (repeat the same parameters with it)")
	}
	return c, true, nil
}
