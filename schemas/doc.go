// Package schemas holds the Avro schemas of every record on minecart's topics
// (the embedded *.avsc files, one per record, named as in names.go) and the
// Serde that frames and encodes them.
//
// # Framing
//
// A Kafka record value is never bare Avro: a reader must know the writer's
// schema. Two framings are supported, and Decode accepts both:
//
//   - Avro single-object encoding (the default, SingleObject): the bytes
//     C3 01, then the 8-byte little-endian CRC-64-AVRO fingerprint of the
//     schema's Parsing Canonical Form, then the Avro binary body. It is the
//     Avro specification's own format, needs no service, and any Avro
//     implementation that has the .avsc file can compute the fingerprint and
//     decode the record, which is what partners get (the schemas are
//     published with the code). minecart computes the canonical form and the
//     fingerprint itself, following the specification (pcf.go): goavro's
//     are wrong for logical types and unstable with nested names, and a
//     header other implementations cannot match is worse than none. The
//     tests check it against the Avro project's reference cases (computed by
//     Java's Avro, whose parsing form drops logical types too) and against
//     avsc for every schema. hamba/avro v2.31 keeps logicalType in its
//     canonical form, so its fingerprint of a schema with a logical type
//     differs: a Go reader on it must take the fingerprint from Fingerprint
//     or compute it as pcf.go does.
//   - Confluent wire format (a Serde with a Registry: NewSerde with
//     SerdeConfig.Registry, or schemas/registry.NewSerde with a registry
//     URL, which builds that Registry over the Schema Registry's HTTP API):
//     00, the 4-byte big-endian schema id, the Avro binary body, for
//     deployments whose consumers use a Schema Registry. NewSerde registers
//     every embedded schema under the subject of its full record name
//     (RecordNameStrategy: several record types share a topic, e.g. scores
//     carries DailyScore and Watermark); decoding asks the registry for ids
//     it has not seen and caches the answer.
//
// # Records
//
// A record is a type of schemas/avro (DailyScore, LedgerEntry, DeadLetter,
// ...), with the Avro binary encoder and decoder generated from its .avsc:
// Marshal (AppendMarshal) frames its body, Unmarshal decodes a framed value
// into it, and Name tells a value's record name without decoding it (for
// topics that carry several records). The generated decoder checks every
// length and count against the bytes left before it allocates, so a short
// hostile body never makes a large allocation. A value written with another
// version of the record's schema (a registry id of another writer) is
// decoded by goavro with that writer's schema, re-encoded with the embedded
// one (fields it lacks take their defaults, fields it adds are dropped),
// then decoded typed.
//
// The native API (Encode, AppendEncode, Decode, DecodeAs) encodes and
// decodes through github.com/linkedin/goavro/v2, one Codec per schema, built
// once. Telemetry's Event and Batch have no schemas/avro type: their own
// codec (services/telemetry, framed by services/telemetry/wire) is checked
// against the native API and falls back on it for other writer schemas.
// Natives follow goavro: a record is map[string]any, a nullable union is
// nil or map[string]any{"double": v}, timestamp-millis is time.Time, bytes
// are []byte, arrays are []any.
//
// No body reaches goavro unchecked: before goavro decodes one (Decode,
// DecodeAs, and the first step of Unmarshal's schema resolution), a check
// that allocates nothing walks it against the schema (validate.go), because
// goavro sizes arrays and maps from the block count it reads and a forged
// count turns a tiny record into a fatal out-of-memory. Errors say what is
// wrong: ErrMalformed for bytes that are not a record, ErrUnknownSchema for
// a fingerprint or id nobody registered, or a record of another schema than
// the one asked for (both: dead-letter the record); anything else (the
// registry unreachable) is transient.
//
// A broken .avsc makes that schema unusable with a clear error at its first
// use (NewSerde reports all of them up front); nothing panics at package
// initialisation.
package schemas
