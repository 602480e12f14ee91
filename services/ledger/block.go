package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// headerMagic starts every canonical block header.
const headerMagic = "mcledger"

// headerVersion follows the magic.
const headerVersion = 1

// HeaderSize is the length of a canonical block header.
const HeaderSize = 8 + 1 + 8 + 32 + 8 + 32 + 8 + 8 + 8 + 1

// Clock says where a block's timestamp comes from.
type Clock uint8

const (
	// ClockEvent: the timestamp is data (a credit block's window end), so
	// replaying the same scores yields the same header.
	ClockEvent Clock = 0
	// ClockWall: the ledger's wall clock when it wrote a debit block.
	ClockWall Clock = 1
)

// Header is a block header: the signed tree head after the block.
type Header struct {
	Height      uint64
	PrevHash    merkle.Hash // Hash of the previous header; zero for height 0
	TreeSize    uint64      // leaves after the block
	Root        merkle.Hash // root after the block
	FirstIndex  uint64      // leaf index of the block's first entry
	LastIndex   uint64      // leaf index of its last entry (TreeSize-1)
	TimestampMs int64
	Clock       Clock
}

// Marshal returns the canonical header (HeaderSize bytes, docs/ledger.md):
// "mcledger", version 01, height, prev hash, tree size, root, first index,
// last index, timestamp ms, clock; integers 8-byte big-endian.
func (h *Header) Marshal() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, headerMagic...)
	b = append(b, headerVersion)
	b = binary.BigEndian.AppendUint64(b, h.Height)
	b = append(b, h.PrevHash[:]...)
	b = binary.BigEndian.AppendUint64(b, h.TreeSize)
	b = append(b, h.Root[:]...)
	b = binary.BigEndian.AppendUint64(b, h.FirstIndex)
	b = binary.BigEndian.AppendUint64(b, h.LastIndex)
	b = binary.BigEndian.AppendUint64(b, uint64(h.TimestampMs))
	return append(b, byte(h.Clock))
}

// UnmarshalHeader parses a canonical header.
func UnmarshalHeader(b []byte) (Header, error) {
	var h Header
	if len(b) != HeaderSize {
		return h, fmt.Errorf("header is %d bytes, want %d: %w", len(b), HeaderSize, ErrBlock)
	}
	if string(b[:8]) != headerMagic || b[8] != headerVersion {
		return h, fmt.Errorf("header magic/version %q: %w", b[:9], ErrBlock)
	}
	r := reader{b: b[9:]}
	h.Height = r.u64()
	copy(h.PrevHash[:], r.take(32))
	h.TreeSize = r.u64()
	copy(h.Root[:], r.take(32))
	h.FirstIndex = r.u64()
	h.LastIndex = r.u64()
	h.TimestampMs = r.i64()
	h.Clock = Clock(r.byte())
	if h.Clock != ClockEvent && h.Clock != ClockWall {
		return h, fmt.Errorf("header clock %d: %w", h.Clock, ErrBlock)
	}
	return h, nil
}

// Hash is SHA-256 of the canonical header: the next block's PrevHash.
func (h *Header) Hash() merkle.Hash { return sha256.Sum256(h.Marshal()) }

// ErrBlock marks a block that does not parse.
var ErrBlock = errors.New("invalid ledger block")

// Block is one block of the book: header, the canonical entries it
// appends (leaves FirstIndex..LastIndex), the ledger key's Ed25519
// signature over the header, and the same tree head as a C2SP checkpoint.
type Block struct {
	Header     Header
	Entries    [][]byte
	Signature  []byte
	Checkpoint string
}

// blockMagic starts the canonical block encoding used in exports.
const blockMagic = "mcblock1"

// MarshalBinary encodes the block for an export file: "mcblock1", header,
// u32 entry count, each entry as u32 length + bytes, u32 signature length
// + signature, u32 checkpoint length + checkpoint text.
func (b *Block) MarshalBinary() ([]byte, error) {
	n := len(blockMagic) + HeaderSize + 4 + 4 + len(b.Signature) + 4 + len(b.Checkpoint)
	for _, e := range b.Entries {
		n += 4 + len(e)
	}
	out := make([]byte, 0, n)
	out = append(out, blockMagic...)
	out = append(out, b.Header.Marshal()...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Entries)))
	for _, e := range b.Entries {
		out = appendBytes(out, e)
	}
	out = appendBytes(out, b.Signature)
	out = appendStr(out, b.Checkpoint)
	return out, nil
}

// UnmarshalBlock decodes MarshalBinary's encoding. It checks the framing
// only; Book.Apply checks the contents.
func UnmarshalBlock(data []byte) (Block, error) {
	var b Block
	if !bytes.HasPrefix(data, []byte(blockMagic)) {
		return b, fmt.Errorf("block magic: %w", ErrBlock)
	}
	r := reader{b: data[len(blockMagic):]}
	hb := r.take(HeaderSize)
	if r.err != nil {
		return b, fmt.Errorf("block header truncated: %w", ErrBlock)
	}
	h, err := UnmarshalHeader(hb)
	if err != nil {
		return b, err
	}
	b.Header = h
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b))/4 {
		return b, fmt.Errorf("block entry count %d exceeds data: %w", n, ErrBlock)
	}
	b.Entries = make([][]byte, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		b.Entries = append(b.Entries, r.bytes())
	}
	b.Signature = r.bytes()
	b.Checkpoint = r.str()
	if r.err != nil {
		return b, fmt.Errorf("block truncated: %w", ErrBlock)
	}
	if len(r.b) != 0 {
		return b, fmt.Errorf("%d trailing bytes after block: %w", len(r.b), ErrBlock)
	}
	return b, nil
}
