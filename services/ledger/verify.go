package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// BlockSource yields the book's records in order from the first: the
// blocks topic (services/ledger/blocks) or an export file (ReadExport).
// A record that does not decode is handed over too (Record.Err), so the
// reader reports it and goes on; Blocks returns an error only when it
// cannot go on reading. It stops at the end of what is there when it is
// called.
type BlockSource interface {
	Blocks(ctx context.Context, fn func(Record) error) error
}

// LastBlockReader reads just the last published block (nil for an empty
// book): a BlockSource that is one lets a writer check a book it kept
// against the published head instead of re-reading the whole book.
type LastBlockReader interface {
	LastBlock(ctx context.Context) (*Block, error)
}

// Summary describes a verified book.
type Summary struct {
	// Bad are the records skipped because they do not extend the book
	// (nil if none): the rest is what the other fields describe.
	Bad *BadRecords

	Blocks      uint64
	Entries     uint64
	Credits     uint64
	Debits      uint64
	Adjustments uint64
	Transfers   uint64 // kind 5 entries (every phase)
	Rescores    uint64 // kind 4 entries (late-data corrections of credited days)
	Head        Header
	Checkpoint  string // the last block's signed checkpoint
}

// Verify reads every block of src and checks it with no trust in whoever
// serves it: every leaf and root recomputed, every header link, index,
// signature and checkpoint checked against pub, no vehicle-day credited
// twice. A record that does not extend the verified book is skipped, and
// the rest verified: if there was any, the error is a *BadRecords naming
// each (errors.As finds the first *BadRecord and its *Inconsistency) and
// the Summary describes the book without them. A source that cannot be
// read to its end is an *Inconsistency at the block where it stopped.
func Verify(ctx context.Context, src BlockSource, pub ed25519.PublicKey) (Summary, error) {
	return VerifySince(ctx, src, pub, "")
}

// VerifySince verifies the book as Verify does and then checks it extends
// since, a checkpoint signed by pub that the caller kept from earlier (""
// for none), as a client holding it would: a consistency proof from
// since's tree size to the head, made with the rebuilt tree and checked
// with CheckConsistency. A book that does not extend since (a fork, a
// rewritten or truncated history) is an *Inconsistency naming both
// checkpoints; a since that is not a checkpoint signed by pub is an error
// before anything is read.
func VerifySince(ctx context.Context, src BlockSource, pub ed25519.PublicKey, since string) (Summary, error) {
	var old Checkpoint
	if since != "" {
		var err error
		if old, err = VerifyCheckpoint(since, pub); err != nil {
			return Summary{}, fmt.Errorf("earlier checkpoint: %w", err)
		}
	}
	var sum Summary
	oldBlock, covered := uint64(0), old.Size == 0 // the block that reaches since's tree size
	book, err := replay(ctx, src, pub, func(bad *BadRecord) {
		if sum.Bad == nil {
			sum.Bad = &BadRecords{}
		}
		sum.Bad.add(bad)
	}, func(blk *Block) {
		if !covered && blk.Header.TreeSize >= old.Size {
			oldBlock, covered = blk.Header.Height, true
		}
		sum.Blocks++
		sum.Head = blk.Header
		sum.Checkpoint = blk.Checkpoint
		for _, raw := range blk.Entries {
			sum.Entries++
			switch Kind(raw[1]) {
			case KindCredit:
				sum.Credits++
			case KindDebit:
				sum.Debits++
			case KindTransfer:
				sum.Transfers++
			case KindRescore:
				sum.Rescores++
			default:
				sum.Adjustments++
			}
		}
	})
	if err != nil {
		return sum, err
	}
	var badErr error
	if sum.Bad != nil {
		badErr = sum.Bad
	}
	if since == "" {
		return sum, badErr
	}
	head := fmt.Sprintf("the head checkpoint: tree size %d, root %s", sum.Head.TreeSize, sum.Head.Root)
	earlier := fmt.Sprintf("the earlier checkpoint: tree size %d, root %s", old.Size, old.Root)
	if !covered {
		return sum, errors.Join(badErr, &Inconsistency{Block: book.Height(), Entry: -1, What: "the book is shorter than the earlier checkpoint",
			Expected: earlier, Found: head})
	}
	if old.Size == 0 {
		return sum, badErr // every book extends the empty tree
	}
	proof, err := book.Tree().ConsistencyProof(old.Size, sum.Head.TreeSize)
	if err == nil {
		err = CheckConsistency(since, sum.Checkpoint, proof, pub)
	}
	if err != nil {
		at, _ := book.Tree().RootAt(old.Size)
		return sum, errors.Join(badErr, &Inconsistency{Block: oldBlock, Entry: -1,
			What:     fmt.Sprintf("the book does not extend the earlier checkpoint (its first %d entries have root %s): %v", old.Size, at, err),
			Expected: "a book extending " + earlier, Found: head})
	}
	return sum, badErr
}

// Rebuild reads every block of src into a new book, verifying each as
// Verify does: the book a writer resumes from. Records that do not extend
// the book are skipped and handed to bad (if not nil); the error is only
// for a source that cannot be read to its end.
func Rebuild(ctx context.Context, src BlockSource, pub ed25519.PublicKey, bad func(*BadRecord)) (*Book, error) {
	return replay(ctx, src, pub, bad, nil)
}

// replay applies every block of src that extends the book to a new book,
// calling each for every block applied and bad (if not nil) for every
// record skipped.
func replay(ctx context.Context, src BlockSource, pub ed25519.PublicKey, bad func(*BadRecord), each func(*Block)) (*Book, error) {
	book := NewBook()
	err := src.Blocks(ctx, func(rec Record) error {
		if br := book.ApplyRecord(rec, pub); br != nil {
			if bad != nil {
				bad(br)
			}
			return nil
		}
		if each != nil {
			each(rec.Block)
		}
		return nil
	})
	var inc *Inconsistency
	if err != nil && !errors.As(err, &inc) && ctx.Err() == nil {
		err = &Inconsistency{Block: book.Height(), Entry: -1, What: "reading the book: " + err.Error()}
	}
	return book, err
}

// exportMagic is the first line of an export file.
const exportMagic = "minecart-ledger-export v1\n"

// Export writes the blocks of src to w in the export format: the line
// "minecart-ledger-export v1", then each block as a 4-byte big-endian
// length and Block.MarshalBinary. With pub, only the blocks that extend
// the verified book are written (the export verifies); without (nil),
// every block that decodes is, and Verify checks the file. The records
// skipped are handed to bad (if not nil).
func Export(ctx context.Context, src BlockSource, pub ed25519.PublicKey, w io.Writer, bad func(*BadRecord)) (blocks uint64, err error) {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(exportMagic); err != nil {
		return 0, err
	}
	book := NewBook()
	err = src.Blocks(ctx, func(rec Record) error {
		blk := rec.Block
		if blk == nil || pub != nil {
			if br := book.ApplyRecord(rec, pub); br != nil {
				if bad != nil {
					bad(br)
				}
				return nil
			}
		}
		b, err := blk.MarshalBinary()
		if err != nil {
			return err
		}
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		if _, err := bw.Write(n[:]); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
		blocks++
		return nil
	})
	if err != nil {
		return blocks, fmt.Errorf("export: %w", err)
	}
	return blocks, bw.Flush()
}

// exportSource reads an export file.
type exportSource struct{ r io.Reader }

// ReadExport returns the blocks of an export file as a BlockSource.
func ReadExport(r io.Reader) BlockSource { return exportSource{r: r} }

// ReadCheckpoint reads a signed checkpoint saved earlier, for
// VerifySince: an export file (its last block's checkpoint), JSON with a
// "checkpoint" field (GET /v1/ledger/head, a proof bundle, a proof
// answer), or the checkpoint text itself. It does not verify the
// checkpoint.
func ReadCheckpoint(ctx context.Context, r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(len(exportMagic)); string(magic) == exportMagic {
		var last string
		if err := ReadExport(br).Blocks(ctx, func(rec Record) error {
			if rec.Block != nil {
				last = rec.Block.Checkpoint
			}
			return nil
		}); err != nil {
			return "", fmt.Errorf("checkpoint from an export: %w", err)
		}
		if last == "" {
			return "", errors.New("checkpoint from an export: no blocks")
		}
		return last, nil
	}
	data, err := io.ReadAll(io.LimitReader(br, 1<<20))
	if err != nil {
		return "", err
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		var v struct {
			Checkpoint string `json:"checkpoint"`
		}
		if err := json.Unmarshal(t, &v); err != nil {
			return "", fmt.Errorf("checkpoint: %w", err)
		}
		if v.Checkpoint == "" {
			return "", errors.New(`checkpoint: JSON without a "checkpoint" field`)
		}
		return v.Checkpoint, nil
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n') // a signed note ends in a newline an editor may have dropped
	}
	return string(data), nil
}

// maxBlockBytes bounds one exported block (a block of 100,000 entries of
// ~200 bytes is 20 MB).
const maxBlockBytes = 256 << 20

// Blocks reads the export file: a block that does not decode (its length
// frames it) is a Record with Err; a length that cannot be read or is
// past the data ends the read with an error, since nothing after it can
// be framed.
func (s exportSource) Blocks(ctx context.Context, fn func(Record) error) error {
	br := bufio.NewReader(s.r)
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != exportMagic {
		return fmt.Errorf("not a minecart ledger export (magic %q)", magic)
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("block %d length: %w", i, err)
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > maxBlockBytes {
			return fmt.Errorf("block %d: length %d too large", i, size)
		}
		// Grow with the data actually there, not with a claimed length.
		data, err := io.ReadAll(io.LimitReader(br, int64(size)))
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		if len(data) != int(size) {
			return fmt.Errorf("block %d: %d of %d bytes: %w", i, len(data), size, io.ErrUnexpectedEOF)
		}
		rec := Record{Offset: int64(i)}
		if blk, err := UnmarshalBlock(data); err != nil {
			rec.Err = fmt.Errorf("block %d: %w", i, err)
		} else {
			rec.Block = &blk
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Bundle is a self-contained proof that one entry is in the book: the
// entry's canonical bytes, its leaf index, the tree head it is proven
// against (size, root and the ledger's signed checkpoint of them) and the
// RFC 9162 inclusion proof. CheckBundle checks it offline.
type Bundle struct {
	Entry      []byte   `json:"entry"` // canonical entry, base64 in JSON
	LeafIndex  uint64   `json:"leaf_index"`
	TreeSize   uint64   `json:"tree_size"`
	Root       string   `json:"root"`  // hex
	Proof      []string `json:"proof"` // hex, from the leaf's sibling upwards
	Checkpoint string   `json:"checkpoint"`
	// Decoded is the entry, decoded, for people reading the bundle; CheckBundle
	// ignores it and trusts only Entry.
	Decoded *EntryJSON `json:"decoded,omitempty"`
}

// EntryJSON is an entry's fields for JSON output.
type EntryJSON struct {
	Kind          string   `json:"kind"`
	ID            string   `json:"id"`
	VehicleID     string   `json:"vehicle_id,omitempty"`
	Account       string   `json:"account,omitempty"`
	Date          string   `json:"date,omitempty"`
	TZ            string   `json:"tz,omitempty"`
	WindowEndMs   int64    `json:"window_end_ms,omitempty"`
	ConfigVersion string   `json:"config_version,omitempty"`
	Points        int64    `json:"points,omitempty"`
	Score         float64  `json:"score,omitempty"`
	EventsHash    string   `json:"events_hash,omitempty"`
	Flags         []string `json:"flags,omitempty"`
	Amount        int64    `json:"amount,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	Partner       string   `json:"partner,omitempty"`
	Item          string   `json:"item,omitempty"`
	RedemptionID  string   `json:"redemption_id,omitempty"`
	Ref           string   `json:"ref,omitempty"`
	RequestedAtMs int64    `json:"requested_at_ms,omitempty"`
	// Campaign and bonus entries (docs/campaigns.md); bytes in hex.
	Campaign   string `json:"campaign,omitempty"`
	Action     string `json:"action,omitempty"`
	RuleHash   string `json:"rule_hash,omitempty"`
	Definition string `json:"definition,omitempty"`
	PublicKey  string `json:"public_key,omitempty"`
	Signature  string `json:"signature,omitempty"`
	CreditLeaf int64  `json:"credit_leaf,omitempty"`
	CreditHash string `json:"credit_hash,omitempty"`
	Inputs     string `json:"inputs,omitempty"`
	Requested  int64  `json:"requested,omitempty"`
}

// JSON returns the entry's fields for JSON output.
func (e *Entry) JSON() *EntryJSON {
	return &EntryJSON{
		Kind: e.Kind.String(), ID: e.ID, VehicleID: e.VehicleID, Account: e.Account, Date: e.Date, TZ: e.TZ,
		WindowEndMs: e.WindowEndMs, ConfigVersion: e.ConfigVersion, Points: e.Points, Score: e.Score,
		EventsHash: fmt.Sprintf("%x", e.EventsHash), Flags: e.Flags, Amount: e.Amount, Reason: e.Reason,
		Partner: e.Partner, Item: e.Item, RedemptionID: e.RedemptionID, Ref: e.Ref, RequestedAtMs: e.RequestedAtMs,
		Campaign: e.Campaign, Action: e.Action, RuleHash: hexOrEmpty(e.RuleHash), Definition: hexOrEmpty(e.Definition),
		PublicKey: hexOrEmpty(e.PublicKey), Signature: hexOrEmpty(e.Signature), CreditLeaf: e.CreditLeaf,
		CreditHash: hexOrEmpty(e.CreditHash), Inputs: hexOrEmpty(e.Inputs), Requested: e.Requested,
	}
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("%x", b)
}

// ErrNotFound is returned for an entry id or index the book does not hold.
var ErrNotFound = errors.New("ledger: entry not found")

// Prove verifies the whole book from src against pub and returns the proof
// bundle of one entry, named by its id (score id or request id) or, if
// ref is a decimal number that is no id, by its leaf index, against the
// book's latest signed head.
func Prove(ctx context.Context, src BlockSource, pub ed25519.PublicKey, ref string) (*Bundle, error) {
	var (
		found   []byte
		index   uint64
		byIndex = uint64(1<<64 - 1)
		book    *Book
	)
	if n, err := strconv.ParseUint(ref, 10, 64); err == nil {
		byIndex = n
	}
	var foundByIndex []byte
	var idxOfIndex uint64
	book, err := replay(ctx, src, pub, nil, func(blk *Block) {
		for i, raw := range blk.Entries {
			li := blk.Header.FirstIndex + uint64(i)
			if found == nil {
				if e, err := DecodeEntry(raw); err == nil && e.ID == ref {
					found, index = slices.Clone(raw), li
				}
			}
			if li == byIndex {
				foundByIndex, idxOfIndex = slices.Clone(raw), li
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		found, index = foundByIndex, idxOfIndex
	}
	if found == nil {
		return nil, fmt.Errorf("%q: %w", ref, ErrNotFound)
	}
	head := book.Head()
	proof, err := book.Tree().InclusionProof(index, head.TreeSize)
	if err != nil {
		return nil, err
	}
	e, _ := DecodeEntry(found)
	return &Bundle{
		Entry: found, LeafIndex: index, TreeSize: head.TreeSize, Root: head.Root.String(),
		Proof: hexHashes(proof), Checkpoint: book.Checkpoint(), Decoded: e.JSON(),
	}, nil
}

func hexHashes(hs []merkle.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// CheckBundle checks a proof bundle offline against the ledger public key:
// the checkpoint is signed by the key and names the bundle's tree size and
// root, the entry is canonical, and the inclusion proof leads from the
// entry's leaf hash to that root. It returns the decoded entry.
func CheckBundle(b *Bundle, pub ed25519.PublicKey) (Entry, error) {
	cp, err := VerifyCheckpoint(b.Checkpoint, pub)
	if err != nil {
		return Entry{}, err
	}
	root, err := merkle.ParseHash(b.Root)
	if err != nil {
		return Entry{}, err
	}
	if cp.Size != b.TreeSize || cp.Root != root {
		return Entry{}, fmt.Errorf("checkpoint head %d %s differs from the bundle's %d %s: %w", cp.Size, cp.Root, b.TreeSize, root, ErrSignature)
	}
	e, err := DecodeEntry(b.Entry)
	if err != nil {
		return Entry{}, err
	}
	proof := make([]merkle.Hash, len(b.Proof))
	for i, s := range b.Proof {
		if proof[i], err = merkle.ParseHash(s); err != nil {
			return Entry{}, err
		}
	}
	if err := merkle.VerifyInclusion(b.LeafIndex, b.TreeSize, merkle.HashLeaf(b.Entry), proof, root); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// ReadBundle decodes a bundle's JSON.
func ReadBundle(r io.Reader) (*Bundle, error) {
	var b Bundle
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("proof bundle: %w", err)
	}
	return &b, nil
}

// CheckConsistency is what a client that keeps the ledger's checkpoints
// (an owner app, a partner, a witness) runs on a new one: both checkpoints
// are signed by pub for the same log, the newer is not smaller, and the
// RFC 9162 consistency proof (GET /v1/ledger/consistency) shows the newer
// tree extends the older, so the log did not rewrite history in between.
func CheckConsistency(older, newer string, proof []merkle.Hash, pub ed25519.PublicKey) error {
	a, err := VerifyCheckpoint(older, pub)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	b, err := VerifyCheckpoint(newer, pub)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	if a.Origin != b.Origin {
		return fmt.Errorf("checkpoints of different logs %q and %q: %w", a.Origin, b.Origin, merkle.ErrVerify)
	}
	return merkle.VerifyConsistency(a.Size, b.Size, proof, a.Root, b.Root)
}
