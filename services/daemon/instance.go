package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// instanceLockDir holds the lock files of the instance ids the service
// processes of this host hold (claimInstanceID).
var instanceLockDir = filepath.Join(os.TempDir(), "minecart-instances")

// maxSlots is the most replicas of one service on one host without
// -instance-id.
const maxSlots = 256

// claimInstanceID returns the instance id of a process of service on host
// and a func that releases it (the process's exit, a crash included,
// releases it too: the claim is an flock on a file of instanceLockDir).
//
// With id empty it is host + "-" + N, N the lowest slot no live process of
// service on this host holds: stable across restarts of a lone replica
// (and of a pod or container, whose host name is its own), and never the
// same for two live replicas on one host (different hosts have different
// names). A given id is claimed the same way, so a second live process on
// this host with the same id is refused here with a clear error; across
// hosts the broker fences the one that joined first (pipelines/kafka.Run
// stops it with an error that says so).
func claimInstanceID(service, host, id string) (string, func(), error) {
	if err := os.MkdirAll(instanceLockDir, 0o1777); err != nil {
		return "", nil, fmt.Errorf("instance id: %w", err)
	}
	if id != "" {
		release, ok, err := LockFile(filepath.Join(instanceLockDir, service+"-id-"+sanitize(id)+".lock"))
		if err != nil {
			return "", nil, fmt.Errorf("instance id: %w", err)
		}
		if !ok {
			return "", nil, fmt.Errorf("instance id %q: another live %s process on this host has it: give every replica its own -instance-id", id, service)
		}
		return id, release, nil
	}
	if host == "" {
		host = "host"
	}
	for n := range maxSlots {
		release, ok, err := LockFile(filepath.Join(instanceLockDir, service+"-slot-"+strconv.Itoa(n)+".lock"))
		if err != nil {
			return "", nil, fmt.Errorf("instance id: %w", err)
		}
		if ok {
			return sanitize(host) + "-" + strconv.Itoa(n), release, nil
		}
	}
	return "", nil, fmt.Errorf("instance id: %d live %s processes on this host; set -instance-id", maxSlots, service)
}

// LockFile takes an exclusive flock on path without waiting: ok false if
// another process holds it.
func LockFile(path string) (release func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if errors.Is(err, os.ErrPermission) {
		return nil, false, nil // another user's: taken
	}
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, true, nil
}

// sanitize keeps an id usable as a file name and a Kafka id.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
