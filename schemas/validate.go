package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// goavro sizes an array or map from the block count it reads, before it reads
// the items: make([]any, 0, count) with count up to 2^31-1. A record of a few
// dozen bytes that claims two billion array items makes that a 32 GiB
// allocation, and the process dies with "fatal error: out of memory", which
// no recover() catches (tried: TestDecodeHugeBlockCount). So Decode first
// walks the body against the schema without allocating (check) and hands it
// to goavro only if every block count is backed by bytes that are really
// there; then goavro allocates at most in proportion to the input.

// kind is an Avro type as the checker sees it.
type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes // and string
	kFixed
	kEnum
	kUnion
	kArray
	kMap
	kRecord
)

// shape is a compiled schema: what check needs to walk an encoded value.
type shape struct {
	kind     kind
	n        int      // fixed: size; enum: number of symbols
	children []*shape // record: fields; union: branches; array: items; map: values
	min      int      // fewest bytes one encoded value takes (a lower bound)
}

const (
	maxDepth = 64 // nesting of values checked; deeper input is rejected
	// maxZeroSize bounds the count of a block whose items may take no
	// bytes (nulls, empty records), which no input length bounds.
	maxZeroSize = 1 << 16
)

// compileShape builds the shape of a schema in Parsing Canonical Form (full
// names, no extra attributes).
func compileShape(canonical string) (*shape, error) {
	var v any
	if err := json.Unmarshal([]byte(canonical), &v); err != nil {
		return nil, err
	}
	c := shapeCompiler{named: make(map[string]*shape)}
	s, err := c.compile(v)
	if err != nil {
		return nil, err
	}
	s.setMin(make(map[*shape]bool))
	return s, nil
}

type shapeCompiler struct{ named map[string]*shape }

var primitiveKinds = map[string]kind{
	"null": kNull, "boolean": kBoolean, "int": kInt, "long": kLong,
	"float": kFloat, "double": kDouble, "bytes": kBytes, "string": kBytes,
}

func (c shapeCompiler) compile(v any) (*shape, error) {
	switch t := v.(type) {
	case string:
		if k, ok := primitiveKinds[t]; ok {
			return &shape{kind: k}, nil
		}
		if s := c.named[t]; s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		s := &shape{kind: kUnion}
		for _, b := range t {
			cs, err := c.compile(b)
			if err != nil {
				return nil, err
			}
			s.children = append(s.children, cs)
		}
		return s, nil
	case map[string]any:
		switch t["type"] {
		case "record", "error":
			s := &shape{kind: kRecord}
			c.named[t["name"].(string)] = s // before the fields: they may refer to it
			fields, _ := t["fields"].([]any)
			for _, f := range fields {
				fs, err := c.compile(f.(map[string]any)["type"])
				if err != nil {
					return nil, err
				}
				s.children = append(s.children, fs)
			}
			return s, nil
		case "enum":
			symbols, _ := t["symbols"].([]any)
			s := &shape{kind: kEnum, n: len(symbols)}
			c.named[t["name"].(string)] = s
			return s, nil
		case "fixed":
			size, _ := t["size"].(float64)
			s := &shape{kind: kFixed, n: int(size)}
			c.named[t["name"].(string)] = s
			return s, nil
		case "array", "map":
			k, inner := kArray, t["items"]
			if t["type"] == "map" {
				k, inner = kMap, t["values"]
			}
			cs, err := c.compile(inner)
			if err != nil {
				return nil, err
			}
			return &shape{kind: k, children: []*shape{cs}}, nil
		}
	}
	return nil, fmt.Errorf("unexpected schema %v", v)
}

// setMin computes min for s and everything under it. A record met again
// while its own min is being computed (recursion) counts as 0, which keeps
// min a lower bound.
func (s *shape) setMin(visiting map[*shape]bool) int {
	if visiting[s] {
		return s.min
	}
	visiting[s] = true
	defer delete(visiting, s)
	switch s.kind {
	case kNull:
		s.min = 0
	case kBoolean, kInt, kLong, kBytes, kEnum, kArray, kMap:
		s.min = 1 // a byte, a varint, a length or a block count
		for _, c := range s.children {
			c.setMin(visiting)
		}
	case kFloat:
		s.min = 4
	case kDouble:
		s.min = 8
	case kFixed:
		s.min = s.n
	case kUnion:
		least := -1
		for _, c := range s.children {
			if m := c.setMin(visiting); least < 0 || m < least {
				least = m
			}
		}
		s.min = 1 + max(least, 0)
	case kRecord:
		total := 0
		for _, c := range s.children {
			total += c.setMin(visiting)
		}
		s.min = total
	}
	return s.min
}

var (
	errShort = errors.New("ends early")
	keyShape = &shape{kind: kBytes, min: 1} // a map key
)

// check walks one encoded value of shape s at the start of b and returns
// the rest of b. It allocates nothing.
func (s *shape) check(b []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	switch s.kind {
	case kNull:
		return b, nil
	case kBoolean:
		if len(b) < 1 {
			return nil, errShort
		}
		return b[1:], nil
	case kInt, kLong:
		_, rest, err := varint(b)
		return rest, err
	case kFloat, kDouble, kFixed:
		if len(b) < s.min {
			return nil, errShort
		}
		return b[s.min:], nil
	case kBytes:
		n, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if n < 0 || n > int64(len(rest)) {
			return nil, fmt.Errorf("length %d with %d bytes left", n, len(rest))
		}
		return rest[n:], nil
	case kEnum:
		i, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(s.n) {
			return nil, fmt.Errorf("enum index %d of %d symbols", i, s.n)
		}
		return rest, nil
	case kUnion:
		i, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(s.children)) {
			return nil, fmt.Errorf("union index %d of %d branches", i, len(s.children))
		}
		return s.children[i].check(rest, depth+1)
	case kRecord:
		var err error
		for _, f := range s.children {
			if b, err = f.check(b, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	default: // kArray, kMap
		return s.checkBlocks(b, depth)
	}
}

// checkBlocks walks the blocks of an array or map, refusing a block count
// that the bytes left cannot hold.
func (s *shape) checkBlocks(b []byte, depth int) ([]byte, error) {
	item := s.children[0]
	least := item.min
	if s.kind == kMap {
		least++ // the key's length
	}
	for {
		count, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if count == 0 {
			return b, nil
		}
		if count < 0 { // a negative count is followed by the block's size in bytes
			if count == -count {
				return nil, fmt.Errorf("block count %d", count)
			}
			count = -count
			if _, b, err = varint(b); err != nil {
				return nil, err
			}
		}
		if (least > 0 && count > int64(len(b)/least)) || (least == 0 && count > maxZeroSize) {
			return nil, fmt.Errorf("block of %d items with %d bytes left", count, len(b))
		}
		for range count {
			if s.kind == kMap {
				if b, err = keyShape.check(b, depth+1); err != nil {
					return nil, err
				}
			}
			if b, err = item.check(b, depth+1); err != nil {
				return nil, err
			}
		}
	}
}

// varint reads one zig-zag varint (Avro int or long).
func varint(b []byte) (int64, []byte, error) {
	v, n := binary.Varint(b)
	if n == 0 {
		return 0, nil, errShort
	}
	if n < 0 {
		return 0, nil, errors.New("varint overflows 64 bits")
	}
	return v, b[n:], nil
}
