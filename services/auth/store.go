package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ids"
)

// Roles of API callers (the symbols of minecart.auth.Role).
const (
	RoleOwner    = avro.RoleOwner
	RoleOperator = avro.RoleOperator
	RolePartner  = avro.RolePartner
)

// Table reads the current value of a key of a compacted topic
// (*kafka.Table implements it).
type Table interface {
	Get(key string) ([]byte, bool)
}

// Producer writes one record and waits for the broker's ack
// (*kafka.Producer implements it).
type Producer interface {
	ProduceSync(ctx context.Context, topic string, key, value []byte, headers ...pipelines.Header) error
}

// Subject is the key of a credential: "<role in lower case>/<id>".
func Subject(role avro.Role, id string) string {
	return strings.ToLower(string(role)) + "/" + id
}

func checkID(role avro.Role, id string) error {
	switch role {
	case RoleOwner:
		return ids.Owner(id)
	case RolePartner:
		return ids.Partner(id)
	case RoleOperator:
		return ids.Valid(id)
	}
	return fmt.Errorf("unknown role %q", role)
}

func put(ctx context.Context, p Producer, serde *schemas.Serde, role avro.Role, id, hash string, now time.Time) (*avro.Credential, error) {
	c := &avro.Credential{Subject: Subject(role, id), Role: role, ID: id, Hash: hash, Generation: now.UnixNano(),
		UpdatedMs: now.UTC().Truncate(time.Millisecond)}
	v, err := serde.Marshal(c)
	if err == nil {
		err = p.ProduceSync(ctx, pipelines.TopicCredentials, []byte(c.Subject), v)
	}
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", c.Subject, err)
	}
	return c, nil
}

// SetPassword stores the argon2id hash of owner's new password (a new
// generation: sessions issued before end). The password is 12 to 256
// bytes.
func SetPassword(ctx context.Context, p Producer, serde *schemas.Serde, owner, password string, now time.Time) (*avro.Credential, error) {
	if err := ids.Owner(owner); err != nil {
		return nil, err
	}
	if len(password) < MinPassword || len(password) > MaxPassword {
		return nil, fmt.Errorf("password of %d bytes: want %d to %d", len(password), MinPassword, MaxPassword)
	}
	h, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	return put(ctx, p, serde, RoleOwner, owner, h, now)
}

// NewToken generates a bearer token for an operator or a partner
// ("<role>:<id>:<secret>"), stores the SHA-256 of its secret and returns
// the token: it is shown once and can only be replaced, never read back.
// A new token of the same id replaces (revokes) the previous one.
func NewToken(ctx context.Context, p Producer, serde *schemas.Serde, role avro.Role, id string, now time.Time) (string, error) {
	tok, _, err := NewTokenRecord(ctx, p, serde, role, id, now)
	return tok, err
}

// NewTokenRecord is NewToken that also returns the record written.
func NewTokenRecord(ctx context.Context, p Producer, serde *schemas.Serde, role avro.Role, id string, now time.Time) (string, *avro.Credential, error) {
	if role != RoleOperator && role != RolePartner {
		return "", nil, fmt.Errorf("tokens are for operators and partners, not %s", role)
	}
	if err := checkID(role, id); err != nil {
		return "", nil, err
	}
	secret := NewSecret()
	c, err := put(ctx, p, serde, role, id, hashSecret(secret), now)
	if err != nil {
		return "", nil, err
	}
	return strings.ToLower(string(role)) + ":" + id + ":" + secret, c, nil
}

// Remove deletes a credential (a tombstone): its sessions and tokens stop
// working.
func Remove(ctx context.Context, p Producer, role avro.Role, id string) error {
	if err := checkID(role, id); err != nil {
		return err
	}
	if err := p.ProduceSync(ctx, pipelines.TopicCredentials, []byte(Subject(role, id)), nil); err != nil {
		return fmt.Errorf("remove %s: %w", Subject(role, id), err)
	}
	return nil
}

var errNoCredential = errors.New("no such credential")

// lookup reads and decodes the credential of subject.
func lookup(t Table, serde *schemas.Serde, subject string) (*avro.Credential, error) {
	v, ok := t.Get(subject)
	if !ok || v == nil {
		return nil, errNoCredential
	}
	var c avro.Credential
	if err := serde.Unmarshal(v, &c); err != nil {
		return nil, fmt.Errorf("credential %s: %w", subject, err)
	}
	if c.Subject != subject {
		return nil, fmt.Errorf("credential under key %s names %s", subject, c.Subject)
	}
	return &c, nil
}
