package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/telemetry"
)

// AuthKind is how a device proves its identity.
type AuthKind string

// Authentication kinds (the symbols of minecart.devices.AuthKind).
const (
	AuthHMAC    AuthKind = "HMAC_SHA256"
	AuthEd25519 AuthKind = "ED25519"
)

// Status is a device's state in the registry.
type Status string

// Device states (the symbols of minecart.devices.Status).
const (
	StatusActive  Status = "ACTIVE"
	StatusRevoked Status = "REVOKED"
)

// Device is one provisioned box: the value of the compacted topic
// pipelines.TopicDevices (Avro minecart.devices.Device, key = ID).
type Device struct {
	ID        string
	VehicleID string // the only vehicle it may write events for
	VehicleTZ string // IANA zone filled into events that carry none
	Auth      AuthKind
	// Key is the Ed25519 public key, or the HMAC secret in clear: given
	// to EncodeDevice (which seals it), or opened by DecodeDevice with the
	// registry key (nil when decoded without one).
	Key []byte
	// Sealed is an HMAC secret as the topic carries it (sealed under the
	// registry key, seal.go): set by DecodeDevice, and written as it is by
	// EncodeDevice when Key is nil (a revocation without the key).
	Sealed  []byte
	Status  Status
	Created time.Time
	Updated time.Time
}

// Errors of the device registry, for errors.Is.
var (
	ErrDeviceExists   = errors.New("device already exists")
	ErrDeviceNotFound = errors.New("device not found")
)

const minSecret = 32

func (d *Device) validate() error {
	switch {
	case d.ID == "" || len(d.ID) > 64:
		return fmt.Errorf("device id %q: want 1..64 bytes", d.ID)
	case ids.Vehicle(d.VehicleID) != nil:
		return ids.Vehicle(d.VehicleID) // the one grammar of vehicle ids (services/ids)
	case !telemetry.ValidTZ(d.VehicleTZ):
		return fmt.Errorf("vehicle tz %q: not an IANA time zone", d.VehicleTZ)
	case d.Status != StatusActive && d.Status != StatusRevoked:
		return fmt.Errorf("status %q: unknown", d.Status)
	}
	switch d.Auth {
	case AuthHMAC:
		if len(d.Key) == 0 && len(d.Sealed) > 0 {
			break // written back as read (a revocation without the key)
		}
		if len(d.Key) < minSecret {
			return fmt.Errorf("HMAC secret of %d bytes: want at least %d", len(d.Key), minSecret)
		}
	case AuthEd25519:
		if len(d.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 public key of %d bytes: want %d", len(d.Key), ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("auth kind %q: want %s or %s", d.Auth, AuthHMAC, AuthEd25519)
	}
	return nil
}

// EncodeDevice returns d as a framed Avro minecart.devices.Device. An
// HMAC secret (d.Key) is sealed under key (required then); with no Key,
// d.Sealed is written as it is.
func EncodeDevice(serde *schemas.Serde, key *RegistryKey, d *Device) ([]byte, error) {
	k := d.Key
	if d.Auth == AuthHMAC {
		switch {
		case len(d.Key) > 0 && key == nil:
			return nil, fmt.Errorf("device %s: an HMAC secret is only written sealed, and no device-registry key was given", d.ID)
		case len(d.Key) > 0:
			k = key.Seal(d.ID, d.Key)
		case len(d.Sealed) > 0:
			k = d.Sealed
		default:
			return nil, fmt.Errorf("device %s: no HMAC secret", d.ID)
		}
	}
	return serde.Marshal(&avro.Device{ID: d.ID, VehicleID: d.VehicleID, VehicleTZ: d.VehicleTZ,
		Auth: avro.AuthKind(d.Auth), Key: k, Status: avro.Status(d.Status), CreatedMs: d.Created, UpdatedMs: d.Updated})
}

// DecodeDevice reads a framed Avro minecart.devices.Device. The key field
// of an HMAC device goes to Sealed; with a registry key, it is opened
// into Key, and a record that does not open (a plaintext secret written
// before sealing, another key, tampering) is an error wrapping
// ErrNotSealed, with the Device decoded otherwise.
func DecodeDevice(serde *schemas.Serde, key *RegistryKey, b []byte) (Device, error) {
	var r avro.Device
	if err := serde.Unmarshal(b, &r); err != nil {
		return Device{}, err
	}
	d := Device{ID: r.ID, VehicleID: r.VehicleID, VehicleTZ: r.VehicleTZ, Auth: AuthKind(r.Auth), Key: r.Key,
		Status: Status(r.Status), Created: r.CreatedMs, Updated: r.UpdatedMs}
	if d.Auth != AuthHMAC {
		return d, nil
	}
	d.Sealed, d.Key = r.Key, nil
	if key == nil {
		return d, nil
	}
	secret, err := key.Open(d.ID, d.Sealed)
	if err != nil {
		return d, fmt.Errorf("device %s: %w", d.ID, err)
	}
	d.Key = secret
	return d, nil
}

// Devices administers the device registry (the CLI's `minecart devices
// add|list|revoke`): it writes with a Producer and reads a Table of
// pipelines.TopicDevices. Add and Revoke return once the Table shows the
// change, so a following List or Get sees it.
type Devices struct {
	producer *kafka.Producer
	table    *kafka.Table
	key      *RegistryKey
	serde    *schemas.Serde
	now      func() time.Time
}

// NewDevices returns the registry administrator over p and t (a Table of
// pipelines.TopicDevices). key seals the HMAC secrets Add writes (nil:
// only Ed25519 devices can be added; List and Revoke need no key); serde
// nil means schemas.SingleObject(), now nil means time.Now.
func NewDevices(p *kafka.Producer, t *kafka.Table, key *RegistryKey, serde *schemas.Serde, now func() time.Time) *Devices {
	if serde == nil {
		serde = schemas.SingleObject()
	}
	if now == nil {
		now = time.Now
	}
	return &Devices{producer: p, table: t, key: key, serde: serde, now: now}
}

// NewDevice is what Add needs. With AuthHMAC and no Key, Add generates a
// 32-byte secret and returns it in the Device (show it once; it is the
// box's credential). With AuthEd25519, Key is the box's public key.
type NewDevice struct {
	ID, VehicleID, VehicleTZ string
	Auth                     AuthKind
	Key                      []byte
}

// Add provisions a device. Adding an id that exists (even revoked) is
// ErrDeviceExists: ids are never reused.
func (ds *Devices) Add(ctx context.Context, nd NewDevice) (Device, error) {
	if err := ds.table.WaitCaught(ctx); err != nil {
		return Device{}, err
	}
	if _, ok := ds.table.Get(nd.ID); ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceExists, nd.ID)
	}
	now := ds.now().UTC().Truncate(time.Millisecond)
	d := Device{ID: nd.ID, VehicleID: nd.VehicleID, VehicleTZ: nd.VehicleTZ, Auth: nd.Auth,
		Key: bytes.Clone(nd.Key), Status: StatusActive, Created: now, Updated: now}
	if d.Auth == AuthHMAC && ds.key == nil {
		return Device{}, errors.New("an HMAC device needs the device-registry key to seal its secret (--device-key)")
	}
	if d.Auth == AuthHMAC && len(d.Key) == 0 {
		d.Key = make([]byte, minSecret)
		_, _ = rand.Read(d.Key) // never fails (Go 1.24+)
	}
	if err := d.validate(); err != nil {
		return Device{}, err
	}
	return d, ds.put(ctx, &d)
}

// Revoke marks device id revoked: the gateway refuses its requests from
// the moment its replicas' tables see the record.
func (ds *Devices) Revoke(ctx context.Context, id string) (Device, error) {
	d, err := ds.get(ctx, id)
	if err != nil {
		return Device{}, err
	}
	pub := d.Key
	d.Status, d.Updated = StatusRevoked, ds.now().UTC().Truncate(time.Millisecond)
	d.Key = nil // an HMAC secret is written back as it was sealed
	if d.Auth == AuthEd25519 {
		d.Key = pub
	}
	return d, ds.put(ctx, &d)
}

func (ds *Devices) put(ctx context.Context, d *Device) error {
	v, err := EncodeDevice(ds.serde, ds.key, d)
	if err != nil {
		return err
	}
	if err := ds.producer.ProduceSync(ctx, pipelines.TopicDevices, []byte(d.ID), v); err != nil {
		return err
	}
	if err := ds.table.Wait(ctx, d.ID, func(got []byte, ok bool) bool { return ok && bytes.Equal(got, v) }); err != nil {
		return fmt.Errorf("device %s written, not yet visible: %w", d.ID, err)
	}
	return nil
}

// Get returns device id, its HMAC secret opened when the Devices has the
// registry key (an error wrapping ErrNotSealed when it does not open).
func (ds *Devices) Get(ctx context.Context, id string) (Device, error) {
	if err := ds.table.WaitCaught(ctx); err != nil {
		return Device{}, err
	}
	v, ok := ds.table.Get(id)
	if !ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, id)
	}
	return DecodeDevice(ds.serde, ds.key, v)
}

// get is Get without opening the secret (Sealed only).
func (ds *Devices) get(ctx context.Context, id string) (Device, error) {
	if err := ds.table.WaitCaught(ctx); err != nil {
		return Device{}, err
	}
	v, ok := ds.table.Get(id)
	if !ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, id)
	}
	return DecodeDevice(ds.serde, nil, v)
}

// List returns every device, by id. Records that do not decode are skipped
// and reported in the error (joined), with the devices that did.
func (ds *Devices) List(ctx context.Context) ([]Device, error) {
	if err := ds.table.WaitCaught(ctx); err != nil {
		return nil, err
	}
	var out []Device
	var errs []error
	ds.table.Range(func(k string, v []byte) bool {
		d, err := DecodeDevice(ds.serde, nil, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", k, err))
			return true
		}
		out = append(out, d)
		return true
	})
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return out, errors.Join(errs...)
}

// registry is the gateway's read side: device lookups decoded once per
// table value.
type registry struct {
	table *kafka.Table
	key   *RegistryKey // opens HMAC secrets (nil: every HMAC device is refused)
	// onNotSealed is told of a record refused as not sealed, once per
	// record value (the server logs it).
	onNotSealed func(id string, err error)
	serde       *schemas.Serde
	mu          sync.RWMutex
	cache       map[string]cachedDevice
}

type cachedDevice struct {
	raw []byte
	dev *Device
	err error // a record refused as not sealed: remembered, reported once
}

func (r *registry) lookup(id string) (*Device, bool, error) {
	raw, ok := r.table.Get(id)
	if !ok {
		return nil, false, nil
	}
	r.mu.RLock()
	c, hit := r.cache[id]
	r.mu.RUnlock()
	if hit && bytes.Equal(c.raw, raw) {
		if c.err != nil {
			return nil, false, c.err
		}
		return c.dev, true, nil
	}
	key := r.key
	if key == nil {
		key = noKey
	}
	d, err := DecodeDevice(r.serde, key, raw)
	if errors.Is(err, ErrNotSealed) {
		// Cached, so that requests naming this device cost no decryption
		// and the log says it once per record, not once per request.
		r.mu.Lock()
		r.cache[id] = cachedDevice{raw: raw, err: err}
		r.mu.Unlock()
		if r.onNotSealed != nil {
			r.onNotSealed(id, err)
		}
		return nil, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("device %s: %w", id, err)
	}
	r.mu.Lock()
	r.cache[id] = cachedDevice{raw: raw, dev: &d}
	r.mu.Unlock()
	return &d, true, nil
}

// noKey is the registry key of a gateway given none: a random key nobody
// holds, so that every HMAC device is refused as not sealed.
var noKey, _ = GenerateRegistryKey()

// Unsealed is the result of Seal: devices whose plaintext HMAC secret was
// sealed in place, and those already sealed.
type Unsealed struct {
	Sealed, Already []string
}

// Seal migrates the registry to sealed secrets: every HMAC device whose
// record still carries its secret in clear (written before sealing
// existed) is written again with the same secret sealed under the
// Devices' key. The boxes keep their secret, but it was readable by every
// client of the topic: rotate it (revoke, add a new device) where that
// matters. The plaintext records stay in the topic's log until compaction
// removes them. A record sealed under another key is an error.
func (ds *Devices) Seal(ctx context.Context) (Unsealed, error) {
	var out Unsealed
	if ds.key == nil {
		return out, errors.New("sealing needs the device-registry key")
	}
	list, err := ds.List(ctx)
	if err != nil {
		return out, err
	}
	for i := range list {
		d := &list[i]
		if d.Auth != AuthHMAC {
			continue
		}
		if IsSealed(d.Sealed) {
			if _, err := ds.key.Open(d.ID, d.Sealed); err != nil {
				return out, fmt.Errorf("device %s: %w", d.ID, err)
			}
			out.Already = append(out.Already, d.ID)
			continue
		}
		if len(d.Sealed) < minSecret {
			return out, fmt.Errorf("device %s: plaintext HMAC secret of %d bytes, want at least %d", d.ID, len(d.Sealed), minSecret)
		}
		d.Key, d.Sealed = d.Sealed, nil
		d.Updated = ds.now().UTC().Truncate(time.Millisecond)
		if err := ds.put(ctx, d); err != nil {
			return out, err
		}
		out.Sealed = append(out.Sealed, d.ID)
	}
	return out, nil
}
