package fleet

import (
	"encoding/hex"
	"strconv"
)

// Vehicle is one simulated vehicle and the box fitted to it.
type Vehicle struct {
	Index     int    // position in the fleet, 0..Vehicles-1
	VehicleID string // a 17-character VIN with a valid check digit
	DeviceID  string // the box, bound to this vehicle
	Profile   Profile
	Fraud     Fraud // FraudNone unless Profile is Fraudulent
	TZ        string
}

// Device is one line of the provisioning list: what a device registry
// needs to accept the box's signed uploads.
type Device struct {
	DeviceID  string
	VehicleID string
	// Secret is the box's 32-byte HMAC key, derived from the seed: fine for
	// simulations, never for real devices.
	Secret []byte
}

// SecretHex is the secret as lower-case hex.
func (d Device) SecretHex() string { return hex.EncodeToString(d.Secret) }

const (
	tagProfile uint64 = iota + 1
	tagVIN
	tagDevice
	tagSecret
	tagParams
	tagDay
	tagTrip
	tagVehicle
	tagFault
	tagPowerLoss
	tagCase
)

// vinChars are the characters a VIN may hold (no I, O, Q).
const vinChars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"

// wmis are world manufacturer identifiers of cars built in Shanghai and
// around (SAIC-VW, SAIC-GM, Tesla Shanghai, SAIC), for realistic VINs.
var wmis = [...]string{"LSV", "LSG", "LRW", "LSJ"}

func vinValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'H':
		return int(c-'A') + 1
	case c >= 'J' && c <= 'R':
		return [...]int{1, 2, 3, 4, 5, 0, 7, 0, 9}[c-'J']
	default: // S..Z
		return int(c-'S') + 2
	}
}

var vinWeights = [17]int{8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2}

// makeVIN builds vehicle i's VIN: WMI, 5 descriptor characters, the ISO 3779
// check digit, model year, plant, and the fleet index as serial, so VINs of
// one fleet never collide.
func makeVIN(seed uint64, i int) string {
	r := newRNG(seed, tagVIN, uint64(i))
	var b [17]byte
	copy(b[:], wmis[r.IntN(len(wmis))])
	for k := 3; k < 8; k++ {
		b[k] = vinChars[r.IntN(len(vinChars))]
	}
	b[9] = "LMNPRST"[r.IntN(7)] // model years 2020..2026
	b[10] = vinChars[r.IntN(24)]
	serial := strconv.Itoa(i)
	for len(serial) < 6 {
		serial = "0" + serial
	}
	if len(serial) > 6 { // fleets above a million: letters in the plant slot
		b[10] = vinChars[(i/1000000)%len(vinChars)]
		serial = serial[len(serial)-6:]
	}
	copy(b[11:], serial)
	sum := 0
	for k, c := range b {
		if k != 8 {
			sum += vinValue(c) * vinWeights[k]
		}
	}
	if d := sum % 11; d == 10 {
		b[8] = 'X'
	} else {
		b[8] = byte('0' + d)
	}
	return string(b[:])
}

// vinCheckOK reports whether vin's check digit is right.
func vinCheckOK(vin string) bool {
	if len(vin) != 17 {
		return false
	}
	sum := 0
	for k := 0; k < 17; k++ {
		if k != 8 {
			sum += vinValue(vin[k]) * vinWeights[k]
		}
	}
	want := byte('0' + sum%11)
	if sum%11 == 10 {
		want = 'X'
	}
	return vin[8] == want
}

// makeDeviceID is "box-" and 16 hex digits derived from seed and index.
func makeDeviceID(seed uint64, i int) string {
	var b [8]byte
	x := mix(seed, tagDevice, uint64(i))
	for k := range b {
		b[k] = byte(x >> (8 * k))
	}
	return "box-" + hex.EncodeToString(b[:])
}

func makeSecret(seed uint64, i int) []byte {
	r := newRNG(seed, tagSecret, uint64(i))
	s := make([]byte, 32)
	for k := 0; k < 32; k += 8 {
		x := r.Uint64()
		for j := 0; j < 8; j++ {
			s[k+j] = byte(x >> (8 * j))
		}
	}
	return s
}

// pickProfile draws vehicle i's profile from the mix.
func pickProfile(seed uint64, i int, m Mix) (Profile, Fraud) {
	r := newRNG(seed, tagProfile, uint64(i))
	u := r.Float64() * (m.Calm + m.Average + m.Aggressive + m.Fraudulent)
	switch {
	case u < m.Calm:
		return Calm, FraudNone
	case u < m.Calm+m.Average:
		return Average, FraudNone
	case u < m.Calm+m.Average+m.Aggressive:
		return Aggressive, FraudNone
	}
	return Fraudulent, FraudNone // New assigns the kinds in turn
}
