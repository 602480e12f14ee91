package daemon

import (
	"strings"
	"testing"
)

// TestClaimInstanceID: without -instance-id a process gets the lowest free
// slot of its service on the host (stable across its restarts, never
// shared by two live processes); a given id held by a live process is
// refused with a clear error; a released claim (the process exited) is
// taken again.
func TestClaimInstanceID(t *testing.T) {
	instanceLockDir = t.TempDir()
	claim := func(svc, id string) (string, func()) {
		t.Helper()
		got, release, err := claimInstanceID(svc, "pod/a", id)
		if err != nil {
			t.Fatalf("claim %s %q: %v", svc, id, err)
		}
		return got, release
	}
	id0, release0 := claim("ingest", "")
	id1, release1 := claim("ingest", "")
	if id0 != "pod_a-0" || id1 != "pod_a-1" {
		t.Fatalf("slots %q %q, want pod_a-0 pod_a-1", id0, id1)
	}
	if other, _ := claim("scoring", ""); other != "pod_a-0" {
		t.Fatalf("another service's first slot %q, want pod_a-0", other)
	}
	release0() // replica 0 crashed: its restart gets its id back
	if again, _ := claim("ingest", ""); again != id0 {
		t.Fatalf("after release: %q, want %q", again, id0)
	}
	release1()

	given, _ := claim("ingest", "replica-7")
	if given != "replica-7" {
		t.Fatalf("given id came back as %q", given)
	}
	if _, _, err := claimInstanceID("ingest", "pod/a", "replica-7"); err == nil || !strings.Contains(err.Error(), "another live ingest process") {
		t.Fatalf("second claim of replica-7: %v, want a refusal", err)
	}
	if _, release, err := claimInstanceID("ledger", "pod/a", "replica-7"); err != nil {
		t.Fatalf("the same id for another service: %v", err)
	} else {
		release()
	}
}
