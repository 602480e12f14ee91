package pipelines

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// The cosigned checkpoint in the partner topics (docs/partners.md, "The
// published checkpoint in your topics"): once the witness quorum is met,
// the ledger's publisher writes the cosigned note to every partner topic
// (minecart.partner.<partner>.redemptions and .campaigns) as a record that
// any Kafka client tells apart from the Avro records of those topics:
//
//	key     "checkpoint:" + the tree size in 20 decimal digits (a colon,
//	        which no redemption id or campaign id contains)
//	headers minecart-record = "ledger-checkpoint",
//	        minecart-tree-size = the tree size in decimal
//	value   the cosigned note, UTF-8 text (never Avro: its first byte is
//	        the origin's, not 0xC3 or 0x00)

// Header names and values of a partner checkpoint record.
const (
	HeaderRecord           = "minecart-record"
	HeaderTreeSize         = "minecart-tree-size"
	RecordLedgerCheckpoint = "ledger-checkpoint"
	partnerCheckpointKey   = "checkpoint:"
)

// PartnerCheckpointKey is the key of the cosigned checkpoint of tree size
// size in a partner topic.
func PartnerCheckpointKey(size uint64) []byte {
	return fmt.Appendf(nil, "%s%020d", partnerCheckpointKey, size)
}

// PartnerCheckpointHeaders are its headers.
func PartnerCheckpointHeaders(size uint64) []Header {
	return []Header{
		{Key: HeaderRecord, Value: []byte(RecordLedgerCheckpoint)},
		{Key: HeaderTreeSize, Value: strconv.AppendUint(nil, size, 10)},
	}
}

// IsPartnerCheckpoint reports whether a record of a partner topic is a
// cosigned checkpoint: its minecart-record header says so, or (a client
// that does not read headers) its key has the checkpoint form.
func IsPartnerCheckpoint(key []byte, header func(name string) ([]byte, bool)) bool {
	if header != nil {
		if v, ok := header(HeaderRecord); ok {
			return bytes.Equal(v, []byte(RecordLedgerCheckpoint))
		}
	}
	_, ok := ParsePartnerCheckpointKey(key)
	return ok
}

// IsCheckpointRecord reports whether r is a cosigned checkpoint record
// (in a partner topic or in minecart.ledger.entries) by its
// minecart-record header alone: every reader of those topics tests it
// before decoding a value, so a checkpoint is never taken for a bad Avro
// record (and never dead-lettered).
func IsCheckpointRecord(r *Record) bool {
	return bytes.Equal(r.Header(HeaderRecord), []byte(RecordLedgerCheckpoint))
}

// CheckpointRecordSize is the tree size of a checkpoint record: its
// minecart-tree-size header, which must equal the size in its key.
func CheckpointRecordSize(r *Record) (uint64, error) {
	h := r.Header(HeaderTreeSize)
	n, err := strconv.ParseUint(string(h), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("checkpoint record at offset %d: %s %q: %w", r.Offset, HeaderTreeSize, h, err)
	}
	if k, ok := ParsePartnerCheckpointKey(r.Key); !ok || k != n {
		return 0, fmt.Errorf("checkpoint record at offset %d: key %q does not name tree size %d", r.Offset, r.Key, n)
	}
	return n, nil
}

// ParsePartnerCheckpointKey returns the tree size of a checkpoint key.
func ParsePartnerCheckpointKey(key []byte) (uint64, bool) {
	s, ok := strings.CutPrefix(string(key), partnerCheckpointKey)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// IsPartnerTopic reports whether topic is a partner's redemptions or
// campaigns topic (PartnerRedemptionsTopic, PartnerCampaignsTopic).
func IsPartnerTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, "minecart.partner.")
	if !ok {
		return false
	}
	for _, suf := range []string{".redemptions", ".campaigns"} {
		if p, ok := strings.CutSuffix(rest, suf); ok && p != "" {
			return true
		}
	}
	return false
}
