package schemas

import (
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

//go:embed *.avsc
var embedded embed.FS

// ErrUnknownSchema is returned (wrapped) for a schema name, single-object
// fingerprint or registry schema id that minecart does not know.
var ErrUnknownSchema = errors.New("unknown schema")

// ErrMalformed is returned (wrapped) for bytes that are not a framed Avro
// record of a known schema: empty, truncated, an unknown framing byte, or a
// body that does not decode. Records failing with it or with
// ErrUnknownSchema are bad input (dead-letter them); other Decode errors,
// such as an unreachable schema registry, are transient.
var ErrMalformed = errors.New("malformed avro record")

// entry is one schema with its codec.
type entry struct {
	name      string // full record name, e.g. minecart.telemetry.Event
	text      string // the .avsc (or registry) text
	canonical string // Parsing Canonical Form
	fp        uint64 // CRC-64-AVRO of canonical
	header    [10]byte
	codec     *goavro.Codec
	shape     *shape // for checking a body before goavro decodes it
	err       error  // why the schema is unusable; other fields may be empty
}

// catalog is the set of embedded schemas. It is built once and read-only
// afterwards, so it is safe for concurrent use.
type catalog struct {
	byName map[string]*entry
	byFP   map[uint64]*entry
	names  []string // sorted
}

// embeddedCatalog parses the embedded .avsc files once, on first use.
var embeddedCatalog = sync.OnceValue(func() *catalog { return loadCatalog(embedded) })

// loadCatalog reads every *.avsc at the top of fsys. A schema that does not
// parse, or whose file name does not match its record name, is kept with its
// error so that only that schema is unusable and every use of it says why.
func loadCatalog(fsys fs.FS) *catalog {
	c := &catalog{byName: make(map[string]*entry), byFP: make(map[uint64]*entry)}
	files, err := fs.Glob(fsys, "*.avsc")
	if err != nil { // only for a malformed pattern
		return c
	}
	for _, file := range files {
		e := loadEntry(fsys, file) // file names are unique, so are e.name
		c.byName[e.name] = e
		c.names = append(c.names, e.name)
		if e.err != nil {
			continue
		}
		if other, clash := c.byFP[e.fp]; clash {
			err := fmt.Errorf("schemas %s and %s have the same fingerprint %016x", other.name, e.name, e.fp)
			other.err, e.err = err, err
			continue
		}
		c.byFP[e.fp] = e
	}
	for fp, e := range c.byFP {
		if e.err != nil {
			delete(c.byFP, fp)
		}
	}
	slices.Sort(c.names)
	return c
}

// fileName returns the .avsc file name of a full record name:
// minecart.telemetry.Event -> telemetry_Event.avsc.
func fileName(name string) string {
	return strings.ReplaceAll(strings.TrimPrefix(name, "minecart."), ".", "_") + ".avsc"
}

// nameOfFile is the inverse of fileName: telemetry_Event.avsc ->
// minecart.telemetry.Event.
func nameOfFile(file string) string {
	return "minecart." + strings.ReplaceAll(strings.TrimSuffix(path.Base(file), ".avsc"), "_", ".")
}

func loadEntry(fsys fs.FS, file string) *entry {
	e := &entry{name: nameOfFile(file)}
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		e.err = fmt.Errorf("schema %s: %w", file, err)
		return e
	}
	e.text = string(b)
	full, err := recordName(b)
	if err != nil {
		e.err = fmt.Errorf("schema %s: %w", file, err)
		return e
	}
	if fileName(full) != file {
		e.err = fmt.Errorf("schema %s: record %s belongs in %s", file, full, fileName(full))
		return e
	}
	if err := e.build(); err != nil {
		e.err = fmt.Errorf("schema %s: %w", file, err)
	}
	return e
}

// build fills the canonical form, fingerprint, header and codec from text.
func (e *entry) build() error {
	canonical, err := canonicalForm([]byte(e.text))
	if err != nil {
		return err
	}
	codec, err := goavro.NewCodec(e.text)
	if err != nil {
		return err
	}
	shape, err := compileShape(canonical)
	if err != nil {
		return err
	}
	e.shape = shape
	e.canonical = canonical
	e.fp = fingerprint64([]byte(canonical))
	e.header[0], e.header[1] = 0xC3, 0x01
	binary.LittleEndian.PutUint64(e.header[2:], e.fp)
	e.codec = codec
	return nil
}

// recordName returns the full name of the top-level record in schema.
func recordName(schema []byte) (string, error) {
	var top struct {
		Type      any     `json:"type"`
		Name      string  `json:"name"`
		Namespace *string `json:"namespace"`
	}
	if err := json.Unmarshal(schema, &top); err != nil {
		return "", fmt.Errorf("schema json: %w", err)
	}
	if top.Type != "record" {
		return "", fmt.Errorf("top-level type is %v, want a record", top.Type)
	}
	if top.Name == "" {
		return "", errors.New("record without a name")
	}
	if strings.Contains(top.Name, ".") || top.Namespace == nil || *top.Namespace == "" {
		return top.Name, nil
	}
	return *top.Namespace + "." + top.Name, nil
}

func (c *catalog) lookup(name string) (*entry, error) {
	e := c.byName[name]
	if e == nil {
		return nil, fmt.Errorf("%w: %q has no schemas/%s", ErrUnknownSchema, name, fileName(name))
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// errs joins the errors of every unusable schema.
func (c *catalog) errs() error {
	var errs []error
	for _, name := range c.names {
		if err := c.byName[name].err; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Schema returns the text of the embedded .avsc file of the record name
// (one of the constants in names.go).
func Schema(name string) (string, error) {
	e, err := embeddedCatalog().lookup(name)
	if err != nil {
		return "", err
	}
	return e.text, nil
}

// Names returns the full names of every embedded schema, sorted.
func Names() []string { return slices.Clone(embeddedCatalog().names) }

// Fingerprint returns the CRC-64-AVRO fingerprint of the Parsing Canonical
// Form of the embedded schema name: the value a single-object header carries
// (little-endian) and that any Avro implementation computes for the .avsc.
func Fingerprint(name string) (uint64, error) {
	e, err := embeddedCatalog().lookup(name)
	if err != nil {
		return 0, err
	}
	return e.fp, nil
}
