package witness

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Evidence is a parsed evidence file (writeEvidence): the checkpoint the
// witness had cosigned and the refused request, whose checkpoint the log
// also signed. Give both to `minecart ledger verify --evidence`.
type Evidence struct {
	Reason, Origin, Time string
	// Cosigned is the checkpoint the witness cosigned, with the log's
	// signatures and the witness's cosignature ("" if none).
	Cosigned string
	// Request is the refused add-checkpoint request.
	Request *Request
}

const (
	evidenceMagic    = "minecart witness evidence v1\n"
	evidenceCosigned = "\ncosigned checkpoint:\n"
	evidenceRefused  = "\nrefused add-checkpoint request:\n"
)

// ParseEvidence parses an evidence file.
func ParseEvidence(b []byte) (*Evidence, error) {
	if !bytes.HasPrefix(b, []byte(evidenceMagic)) {
		return nil, errors.New("witness evidence: not a minecart witness evidence v1 file")
	}
	i := bytes.Index(b, []byte(evidenceCosigned))
	if i < 0 {
		return nil, errors.New("witness evidence: sections missing")
	}
	start := i + len(evidenceCosigned)
	j := bytes.Index(b[start:], []byte(evidenceRefused))
	if j < 0 {
		return nil, errors.New("witness evidence: sections missing")
	}
	j += start
	e := &Evidence{Cosigned: string(b[start:j])}
	header := ""
	if i > len(evidenceMagic) {
		header = string(b[len(evidenceMagic):i])
	}
	for _, l := range strings.Split(header, "\n") {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "reason":
			e.Reason = v
		case "origin":
			e.Origin = v
		case "time":
			e.Time = v
		}
	}
	req, err := ParseRequest(b[j+len(evidenceRefused):])
	if err != nil {
		return nil, fmt.Errorf("witness evidence: refused request: %w", err)
	}
	e.Request = req
	return e, nil
}
