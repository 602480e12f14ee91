package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// HeaderOdometer is the header ingest puts on a clean event whose odometer
// contradicts the vehicle's newest reading (telemetry's
// CodeOdometerDecreased: below a reading at an earlier time, or above one
// at a later time). Such events used to be dead-lettered,
// which threw away the cheat's evidence and every later event of the
// vehicle; now they are written like any other, marked (docs/ingest.md,
// "Odometer marks"), and scoring judges them.
const HeaderOdometer = "odometer_decreased"

// odoMarkVersion is the first field of the header's value.
const odoMarkVersion = "1"

// AppendOdometerMark appends the value of HeaderOdometer for a contradicted
// reading of km at refMs (UTC Unix ms): "1,<refMs>,<km>", the version, the
// time in decimal and the reading in Go's shortest 'g' form (strconv
// FormatFloat(km, 'g', -1, 64)), ASCII, no spaces.
func AppendOdometerMark(b []byte, refMs int64, km float64) []byte {
	b = append(b, odoMarkVersion...)
	b = append(b, ',')
	b = strconv.AppendInt(b, refMs, 10)
	b = append(b, ',')
	return strconv.AppendFloat(b, km, 'g', -1, 64)
}

// ErrOdometerMark: a HeaderOdometer value that is not version 1 of the
// format (another version is not understood, not guessed at).
var ErrOdometerMark = errors.New("ingest: odometer mark")

// ParseOdometerMark parses a HeaderOdometer value: the reference reading's
// time (UTC Unix ms) and km (finite, 0..10,000,000).
func ParseOdometerMark(v []byte) (refMs int64, km float64, err error) {
	f := bytes.Split(v, []byte{','})
	if len(f) != 3 || string(f[0]) != odoMarkVersion {
		return 0, 0, fmt.Errorf("%w: %q is not version %s", ErrOdometerMark, v, odoMarkVersion)
	}
	refMs, err = strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: time: %w", ErrOdometerMark, err)
	}
	km, err = strconv.ParseFloat(string(f[2]), 64)
	if err != nil || math.IsNaN(km) || km < 0 || km > 1e7 {
		return 0, 0, fmt.Errorf("%w: reading %q", ErrOdometerMark, f[2])
	}
	return refMs, km, nil
}
