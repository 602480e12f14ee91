package registry_test

import (
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/registry"
)

func deadLetter() map[string]any {
	return map[string]any{"stage": "ingest", "reason_code": "decode", "error": "x", "source_topic": "t",
		"source_partition": int32(0), "source_offset": int64(1), "key": nil, "value": []byte("v"),
		"time": int64(0)}
}

// TestSerde: a Serde over a real registry API registers every schema,
// writes the Confluent framing, and a second process decodes it.
func TestSerde(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	s, err := registry.NewSerde(t.Context(), registry.Config{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range schemas.Names() {
		text, _ := schemas.Schema(name)
		if got, ok := reg.GetSchema(name, 1); !ok || got.Schema.Schema != text {
			t.Errorf("subject %s not registered with the embedded schema", name)
		}
	}
	b, err := s.Encode(schemas.DeadLetter, deadLetter())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := reg.GetSchema(schemas.DeadLetter, 1)
	if b[0] != 0 || binary.BigEndian.Uint32(b[1:5]) != uint32(got.ID) {
		t.Fatalf("header % x, want 00 + id %d", b[:5], got.ID)
	}
	s2, err := registry.NewSerde(t.Context(), registry.Config{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s2.DecodeAs(schemas.DeadLetter, b); err != nil || d["stage"] != "ingest" {
		t.Fatalf("second serde: %v, %v", d, err)
	}
}

// TestSchema: an unknown id and a non-Avro schema are ErrUnknownSchema; a
// registry that cannot answer is a transient error.
func TestSchema(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	var down atomic.Bool
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	cl, err := registry.New(registry.Config{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Schema(t.Context(), 12345); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("unknown id: %v", err)
	}
	id, _, err := reg.RegisterSchema("p", sr.Schema{Schema: `syntax = "proto3";`, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Schema(t.Context(), uint32(id)); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("protobuf schema: %v", err)
	}
	down.Store(true)
	if _, err := cl.Schema(t.Context(), 1); err == nil || errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("registry down: %v, want a transient error", err)
	}
}

func TestRejects(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/subjects/") {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}`))
			return true
		}
		return false
	})
	if _, err := registry.NewSerde(t.Context(), registry.Config{URL: reg.URL()}); err == nil || !strings.Contains(err.Error(), "incompatible") {
		t.Errorf("NewSerde with a registry that rejects: %v", err)
	}
	if _, err := registry.NewSerde(t.Context(), registry.Config{URL: "http://127.0.0.1:1"}); err == nil {
		t.Error("NewSerde with no registry listening: no error")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg registry.Config
		ok  bool
	}{
		{registry.Config{URL: "http://127.0.0.1:8081"}, true},
		{registry.Config{URL: "http://a:8081, https://b:8081", User: "u", Password: "p"}, true},
		{registry.Config{URL: "127.0.0.1:8081"}, false},
		{registry.Config{URL: "ftp://a"}, false},
		{registry.Config{}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v", c.cfg, err)
		}
	}
	if s, err := registry.NewSerde(t.Context(), registry.Config{}); err != nil || s == nil {
		t.Errorf("NewSerde without a url: %v", err)
	}
	if _, err := registry.NewSerde(t.Context(), registry.Config{User: "u"}); err == nil {
		t.Error("credentials without a url: no error")
	}
}
