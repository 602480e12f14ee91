package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// AppliedKeyPrefix starts the key of the runtime's reserved changelog
// records: "\x00minecart.applied/" + input topic + "/" + input partition
// (decimal), value the next input offset to process, 8 bytes big-endian
// (docs/reliability.md, "Applied offsets in the changelog"). A stateful
// stage's transaction writes one for every input partition it consumed,
// next to its state, so the state says which input it already holds even
// when the broker committed the outputs but not the group offsets. The
// restore keeps them from the stage's Restorer, and a Table never shows
// them. No stage key starts with a NUL byte.
const AppliedKeyPrefix = "\x00minecart.applied/"

// appliedKey is the reserved changelog key of input partition topic/p.
func appliedKey(topic string, p int32) []byte {
	return []byte(AppliedKeyPrefix + topic + "/" + strconv.Itoa(int(p)))
}

// appliedValue encodes the next offset to process.
func appliedValue(next int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(next))
}

// isApplied reports whether a changelog key is a reserved applied-offset
// key.
func isApplied(key []byte) bool {
	return bytes.HasPrefix(key, []byte(AppliedKeyPrefix))
}

// parseApplied decodes a reserved applied-offset record. A nil value (a
// tombstone) is an error, as is any other malformed key or value.
func parseApplied(key, value []byte) (topic string, p int32, next int64, err error) {
	rest, ok := strings.CutPrefix(string(key), AppliedKeyPrefix)
	if !ok {
		return "", 0, 0, fmt.Errorf("applied offset key %q: no prefix", key)
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("applied offset key %q: no topic/partition", key)
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || n < 0 {
		return "", 0, 0, fmt.Errorf("applied offset key %q: bad partition", key)
	}
	if len(value) != 8 {
		return "", 0, 0, fmt.Errorf("applied offset key %q: value of %d bytes, want 8", key, len(value))
	}
	next = int64(binary.BigEndian.Uint64(value))
	if next < 0 {
		return "", 0, 0, fmt.Errorf("applied offset key %q: negative offset %d", key, next)
	}
	return rest[:i], int32(n), next, nil
}
