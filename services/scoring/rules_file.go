package scoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"
)

// LoadRules reads rules as a JSON object of Rules field names, e.g.
// {"Version": "acme-2", "HarshBrakeG": 0.45, "SpeedMinDuration": "15s"},
// over DefaultRules (durations as Go duration strings). An unknown field is
// an error, and so are changed values under the default Version: every set
// of rules that scores differently must say so in config_version.
func LoadRules(r io.Reader) (Rules, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(r)
	if err := dec.Decode(&raw); err != nil {
		return Rules{}, fmt.Errorf("rules: %w", err)
	}
	rules := DefaultRules()
	v := reflect.ValueOf(&rules).Elem()
	durType := reflect.TypeFor[time.Duration]()
	for name, msg := range raw {
		f := v.FieldByName(name)
		if !f.IsValid() || !f.CanSet() {
			return Rules{}, fmt.Errorf("rules: unknown field %q", name)
		}
		if f.Type() == durType {
			var s string
			if err := json.Unmarshal(msg, &s); err != nil {
				return Rules{}, fmt.Errorf("rules: %s: want a duration string like \"10s\": %w", name, err)
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return Rules{}, fmt.Errorf("rules: %s: %w", name, err)
			}
			f.SetInt(int64(d))
			continue
		}
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(f.Addr().Interface()); err != nil {
			return Rules{}, fmt.Errorf("rules: %s: %w", name, err)
		}
	}
	def := DefaultRules()
	if rules.Version == def.Version && rules != def {
		return Rules{}, errors.New("rules: values differ from the defaults but Version is unchanged")
	}
	if err := rules.Validate(); err != nil {
		return Rules{}, err
	}
	return rules, nil
}
