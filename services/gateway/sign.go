package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Request authentication. Every POST /v1/telemetry carries:
//
//	X-Minecart-Device:    the device id
//	X-Minecart-Timestamp: Unix seconds when the box signed the request
//	X-Minecart-Nonce:     16..64 characters of [A-Za-z0-9_-], never reused
//	X-Minecart-Signature: base64 (standard, padded) of the signature over
//	                      "v1\n<device>\n<timestamp>\n<nonce>\n<hex sha256(body)>"
//
// where body is the request body as sent (gzip-compressed if it is), and
// the signature is HMAC-SHA256 with the device's secret or Ed25519 with its
// private key, as provisioned.
const (
	HeaderDevice    = "X-Minecart-Device"
	HeaderTimestamp = "X-Minecart-Timestamp"
	HeaderNonce     = "X-Minecart-Nonce"
	HeaderSignature = "X-Minecart-Signature"
)

// Key is what a box signs with: its HMAC secret or its Ed25519 private key.
type Key struct {
	Kind    AuthKind
	Secret  []byte             // AuthHMAC
	Private ed25519.PrivateKey // AuthEd25519
}

// HMACKey is the signing key of a device provisioned with a shared secret.
func HMACKey(secret []byte) Key { return Key{Kind: AuthHMAC, Secret: secret} }

// Ed25519Key is the signing key of a device provisioned with priv's public key.
func Ed25519Key(priv ed25519.PrivateKey) Key { return Key{Kind: AuthEd25519, Private: priv} }

// Canonical returns the string a request signature covers.
func Canonical(device, timestamp, nonce string, bodySHA256 []byte) []byte {
	b := make([]byte, 0, 3+len(device)+len(timestamp)+len(nonce)+4+64)
	b = append(b, "v1\n"...)
	b = append(b, device...)
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	return hex.AppendEncode(b, bodySHA256)
}

// Sign signs req for device with key at the current time and a random
// nonce. It reads the body (restoring it) to hash it, so sign the body as
// it will be sent: after gzip, if Content-Encoding is gzip.
func Sign(req *http.Request, device string, key Key) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return fmt.Errorf("sign: read body: %w", err)
		}
		_ = req.Body.Close()
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return SignHeaders(req.Header, device, body, key, time.Now(), NewNonce())
}

// SignHeaders sets the four authentication headers on h for body, signed
// by device with key at time at with nonce (for load generators that
// pre-sign and for tests with a fixed clock).
func SignHeaders(h http.Header, device string, body []byte, key Key, at time.Time, nonce string) error {
	ts := strconv.FormatInt(at.Unix(), 10)
	sum := sha256.Sum256(body)
	msg := Canonical(device, ts, nonce, sum[:])
	var sig []byte
	switch key.Kind {
	case AuthHMAC:
		if len(key.Secret) == 0 {
			return errors.New("sign: empty HMAC secret")
		}
		m := hmac.New(sha256.New, key.Secret)
		m.Write(msg)
		sig = m.Sum(nil)
	case AuthEd25519:
		if len(key.Private) != ed25519.PrivateKeySize {
			return errors.New("sign: bad Ed25519 private key")
		}
		sig = ed25519.Sign(key.Private, msg)
	default:
		return fmt.Errorf("sign: unknown key kind %q", key.Kind)
	}
	h.Set(HeaderDevice, device)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// NewNonce returns 128 random bits as 22 URL-safe base64 characters.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// verify checks sig over msg with the device's provisioned key.
func verify(d *Device, msg, sig []byte) bool {
	switch d.Auth {
	case AuthHMAC:
		if len(d.Key) < minSecret {
			return false // never an empty or short key, whatever the record said
		}
		m := hmac.New(sha256.New, d.Key)
		m.Write(msg)
		return hmac.Equal(m.Sum(nil), sig)
	case AuthEd25519:
		return len(d.Key) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(d.Key), msg, sig)
	}
	return false
}

func validNonce(n string) bool {
	if len(n) < 16 || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// authHeaders are a request's authentication headers, parsed.
type authHeaders struct {
	device, timestamp, nonce string
	unix                     int64  // the timestamp
	sig                      []byte // 32 (HMAC-SHA256) or 64 (Ed25519) bytes
}

// maxTimestampDigits bounds X-Minecart-Timestamp (12 digits: year 33658).
const maxTimestampDigits = 12

// parseAuth reads the four authentication headers strictly: each present
// exactly once; the device id 1..64 bytes without control characters; the
// timestamp decimal Unix seconds (digits only, no sign, no leading zero,
// at most 12 digits); the nonce 16..64 of [A-Za-z0-9_-]; the signature
// canonical padded standard base64 of 32 or 64 bytes. Anything else is an
// error (401 missing_auth), found before the body is read.
func parseAuth(h http.Header) (authHeaders, error) {
	var a authHeaders
	var vals [4]string
	for i, name := range [4]string{HeaderDevice, HeaderTimestamp, HeaderNonce, HeaderSignature} {
		v := h.Values(name)
		if len(v) != 1 || v[0] == "" {
			return a, fmt.Errorf("want each of %s, %s, %s, %s exactly once", HeaderDevice, HeaderTimestamp, HeaderNonce, HeaderSignature)
		}
		vals[i] = v[0]
	}
	a.device, a.timestamp, a.nonce = vals[0], vals[1], vals[2]
	if !validDeviceID(a.device) {
		return a, errors.New(HeaderDevice + ": want 1..64 bytes without control characters")
	}
	unix, ok := parseUnix(a.timestamp)
	if !ok {
		return a, errors.New(HeaderTimestamp + ": want Unix seconds (decimal digits)")
	}
	a.unix = unix
	if !validNonce(a.nonce) {
		return a, errors.New(HeaderNonce + ": want 16..64 of [A-Za-z0-9_-]")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(vals[3])
	if err != nil || len(sig) != sha256.Size && len(sig) != ed25519.SignatureSize ||
		base64.StdEncoding.EncodeToString(sig) != vals[3] {
		return a, errors.New(HeaderSignature + ": want standard padded base64 of 32 or 64 bytes")
	}
	a.sig = sig
	return a, nil
}

func validDeviceID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return false
		}
	}
	return true
}

// parseUnix parses decimal digits without sign or leading zero.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > maxTimestampDigits || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
