// Package envflag parses minecart's command lines with ff: flags from the
// arguments first, then from PREFIX_<FLAG> environment variables (upper
// case, "-" and "." as "_") for the flags the arguments did not give. A
// variable that is present but empty sets its flag to the empty string, as
// an empty value on the command line would: ff alone skips empty variables,
// which would leave a flag documented "empty: none" (-metrics-addr,
// -http-addr, -registry-url) at its default with no way to switch it off
// from the environment.
package envflag

import (
	"fmt"
	"os"

	"github.com/peterbourgon/ff/v4"
)

// Parse parses args into fs and then the environment under prefix.
func Parse(fs ff.Flags, args []string, prefix string) error {
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(prefix)); err != nil {
		return err
	}
	return Empty(fs, prefix)
}

// Empty sets to "" every flag of fs not set yet whose variable is present
// and empty (ff has already applied the non-empty ones).
func Empty(fs ff.Flags, prefix string) error {
	return fs.WalkFlags(func(f ff.Flag) error {
		name, ok := f.GetLongName()
		if !ok || f.IsSet() {
			return nil
		}
		key := Name(prefix, name)
		if v, present := os.LookupEnv(key); present && v == "" {
			if err := f.SetValue(""); err != nil {
				return fmt.Errorf("%s=%q: %w", key, v, err)
			}
		}
		return nil
	})
}

// Name is the environment variable of flag name under prefix:
// Name("MINECART", "data-dir") is MINECART_DATA_DIR.
func Name(prefix, name string) string {
	b := []byte(prefix + "_" + name)
	for i, c := range b[len(prefix)+1:] {
		switch {
		case c == '-' || c == '.':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b[len(prefix)+1+i] = c
	}
	return string(b)
}
