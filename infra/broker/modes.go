package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Data directories are private to the user running minecart: kfake
// creates its files 0644 and its directories 0755 (persist.go, with no
// option to change it), and the directory holds the log of every topic,
// the device registry and the SASL users among them. So Start creates the
// data directory 0700 (nobody else can even traverse into it while the
// broker runs) and makes the whole tree private (PrivateTree) before kfake
// starts and again after Close; `minecart` also runs with umask 077
// (cmd/minecart), so what kfake creates while it runs is 0600/0700 there.

// PrivateTree makes dir and everything under it private to its owner:
// directories 0700, files 0600 (symbolic links are left alone). A missing
// dir is no error.
func PrivateTree(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a .tmp file renamed)
			}
			return err
		}
		var mode fs.FileMode
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			mode = 0o700
		case d.Type().IsRegular():
			mode = 0o600
		default:
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm() == mode {
			return nil
		}
		if err := os.Chmod(path, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("private data directory %s: %w", dir, err)
	}
	return nil
}

// prepareDataDir creates dir 0700 and makes what it holds private.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("broker data dir: %w", err)
	}
	return PrivateTree(dir)
}
