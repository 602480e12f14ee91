package chserver

import (
	"context"
	"errors"
	"net"
	"testing"
)

// TestServeErrors covers failures before the engine loads (the engine never
// loads into the test binary).
func TestServeErrors(t *testing.T) {
	if err := Serve(context.Background(), Config{}); err == nil {
		t.Error("Serve without DataDir succeeded")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	users := []User{{Name: "analyst", Password: NewPassword(), Role: RoleReadonly}}
	if err := Serve(context.Background(), Config{Addr: ln.Addr().String(), DataDir: t.TempDir(), Users: users}); err == nil {
		t.Error("Serve on a busy port succeeded")
	}
	if err := Serve(context.Background(), Config{DataDir: t.TempDir()}); err == nil {
		t.Error("Serve without users succeeded")
	}
	for _, bad := range [][]User{
		{{Name: "a", Password: "short", Role: RoleReadonly}},
		{{Name: "a b", Password: NewPassword(), Role: RoleReadonly}},
		{{Name: "a", Password: NewPassword(), Role: "root"}},
		{{Name: "a", Password: NewPassword(), Role: RoleReadonly}, {Name: "a", Password: NewPassword(), Role: RoleWriter}},
	} {
		if err := Serve(context.Background(), Config{DataDir: t.TempDir(), Users: bad, Addr: "127.0.0.1:0"}); err == nil {
			t.Errorf("Serve with users %+v succeeded", bad)
		}
	}
	if _, err := apiFrom(t.TempDir() + "/missing/libchdb.so"); !errors.Is(err, ErrNoLibrary) {
		t.Errorf("missing library: %v", err)
	}
	c := Config{DataDir: "x", Users: users}
	if err := c.Validate(); err != nil || c.Addr != "127.0.0.1:8123" || c.QueueSize <= 0 || c.StreamAfterBytes <= 0 {
		t.Errorf("defaults %+v %v", c, err)
	}
}
