//go:build linux

package stage

import "syscall"

// offHeap returns n bytes of memory the Go heap does not own (an
// anonymous mapping, pages committed as they are touched) and the func
// that unmaps it.
func offHeap(n int) ([]byte, func() error, error) {
	m, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, nil, err
	}
	return m[:0], func() error { return syscall.Munmap(m) }, nil
}
