package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// Signer signs block headers and checkpoints with the ledger key.
type Signer struct {
	priv   ed25519.PrivateKey
	origin string
	keyID  [4]byte
}

// NewSigner returns a signer for the log named origin (the checkpoint's
// first line and the signed note's key name).
func NewSigner(origin string, priv ed25519.PrivateKey) (*Signer, error) {
	if err := validOrigin(origin); err != nil {
		return nil, err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ledger key: %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	return &Signer{priv: priv, origin: origin, keyID: noteKeyID(origin, priv.Public().(ed25519.PublicKey))}, nil
}

// Origin is the log's name.
func (s *Signer) Origin() string { return s.origin }

// Public is the ledger's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// Sign returns the header signature and the signed checkpoint of h.
func (s *Signer) Sign(h *Header) (sig []byte, checkpoint string) {
	sig = ed25519.Sign(s.priv, h.Marshal())
	body := CheckpointBody(s.origin, h.TreeSize, h.Root)
	noteSig := ed25519.Sign(s.priv, []byte(body))
	line := append(s.keyID[:], noteSig...)
	return sig, body + "\n\u2014 " + s.origin + " " + base64.StdEncoding.EncodeToString(line) + "\n"
}

func validOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, " +\n\t") {
		return fmt.Errorf("ledger origin %q: want a non-empty name without spaces or '+'", origin)
	}
	return nil
}

// CheckpointBody is the C2SP tlog-checkpoint body: origin, decimal tree
// size and base64 root, each on its own line.
func CheckpointBody(origin string, size uint64, root merkle.Hash) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// noteKeyID is the C2SP signed-note key id of an Ed25519 key: the first 4
// bytes of SHA-256(name || "\n" || 0x01 || public key).
func noteKeyID(name string, pub ed25519.PublicKey) [4]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', 0x01})
	h.Write(pub)
	var id [4]byte
	copy(id[:], h.Sum(nil))
	return id
}

// VerifierKey is the signed-note verifier key text of the ledger key:
// "<origin>+<key id hex>+<base64(0x01 || public key)>".
func VerifierKey(origin string, pub ed25519.PublicKey) string {
	id := noteKeyID(origin, pub)
	return fmt.Sprintf("%s+%x+%s", origin, id[:], base64.StdEncoding.EncodeToString(append([]byte{0x01}, pub...)))
}

// Checkpoint is a parsed and verified checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   merkle.Hash
}

// ErrSignature marks a signature or checkpoint that does not verify.
var ErrSignature = errors.New("ledger signature does not verify")

// VerifyCheckpoint parses a signed checkpoint and checks it carries a valid
// signature by pub (under the key name = its origin). Other signature lines
// (witness cosignatures) are allowed and ignored.
func VerifyCheckpoint(text string, pub ed25519.PublicKey) (Checkpoint, error) {
	var cp Checkpoint
	i := strings.Index(text, "\n\n")
	if i < 0 {
		return cp, fmt.Errorf("checkpoint: no signature block: %w", ErrSignature)
	}
	body, sigs := text[:i+1], text[i+2:]
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) < 3 {
		return cp, fmt.Errorf("checkpoint: %d body lines, want >= 3: %w", len(lines), ErrSignature)
	}
	cp.Origin = lines[0]
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return cp, fmt.Errorf("checkpoint: tree size %q: %w", lines[1], ErrSignature)
	}
	cp.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != merkle.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return cp, fmt.Errorf("checkpoint: root %q: %w", lines[2], ErrSignature)
	}
	copy(cp.Root[:], root)
	if !strings.HasSuffix(sigs, "\n") {
		return cp, fmt.Errorf("checkpoint: signature block not newline-terminated: %w", ErrSignature)
	}
	id := noteKeyID(cp.Origin, pub)
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			return cp, fmt.Errorf("checkpoint: malformed signature line %q: %w", line, ErrSignature)
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok {
			return cp, fmt.Errorf("checkpoint: malformed signature line %q: %w", line, ErrSignature)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || base64.StdEncoding.EncodeToString(raw) != b64 || len(raw) < 4 {
			return cp, fmt.Errorf("checkpoint: signature encoding in %q: %w", line, ErrSignature)
		}
		if name != cp.Origin || !bytes.Equal(raw[:4], id[:]) {
			continue
		}
		if len(raw) != 4+ed25519.SignatureSize || !ed25519.Verify(pub, []byte(body), raw[4:]) {
			return cp, fmt.Errorf("checkpoint: bad signature by %s: %w", name, ErrSignature)
		}
		return cp, nil
	}
	return cp, fmt.Errorf("checkpoint: no signature by the ledger key %x: %w", id, ErrSignature)
}
