package schemas_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/minecart/minecart/schemas"
)

func Example() {
	serde := schemas.SingleObject() // or schemas.NewSerde(ctx, cfg) with a registry
	value, err := serde.Encode(schemas.DeadLetter, map[string]any{
		"stage":            "ingest",
		"reason_code":      "decode",
		"error":            "malformed avro record: empty",
		"source_topic":     "minecart.telemetry.raw",
		"source_partition": int32(3),
		"source_offset":    int64(42),
		"key":              nil, // a nullable union: nil or map[string]any{"bytes": []byte(...)}
		"value":            []byte{},
		"time":             time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fp, _ := schemas.Fingerprint(schemas.DeadLetter)
	fmt.Printf("header % x = c3 01 + %016x little-endian\n", value[:10], fp)

	name, native, err := serde.Decode(value)
	fmt.Println(name, native["reason_code"], native["source_offset"], native["time"], err)

	_, _, err = serde.Decode([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8})
	fmt.Println(errors.Is(err, schemas.ErrUnknownSchema), err)
	// Output:
	// header c3 01 4e 6b 5d 66 9c 71 cc a9 = c3 01 + a9cc719c665d6b4e little-endian
	// minecart.DeadLetter decode 42 2026-11-25 12:00:00 +0000 UTC <nil>
	// true unknown schema: fingerprint 0807060504030201
}
