package pipelines

// Record kinds on the telemetry topics. minecart.telemetry.raw and
// minecart.telemetry.clean carry two kinds of records: telemetry events
// (no kind header; key = vehicle id) and time marks (header kind=mark; key
// "mark/<gateway>"; value an Avro minecart.telemetry.TimeMark). A gateway
// writes a mark to every partition of the raw topic to say "from now on I
// append to this partition only records I accepted at intake time >= T";
// ingest forwards each mark to the same partition of the clean topic, in
// order with the events around it; scoring closes days on them
// (docs/scoring.md, "Log time"). Every other reader of these topics (the
// sink) skips marks.
const (
	// HeaderKind names a record's kind on topics that carry more than one.
	HeaderKind = "kind"
	// KindMark is the HeaderKind value of a time mark.
	KindMark = "mark"
	// MarkKeyPrefix starts the key of every time mark: "mark/<gateway>".
	MarkKeyPrefix = "mark/"
)

// IsMark reports whether rec is a time mark (its HeaderKind header is
// KindMark).
func IsMark(rec *Record) bool {
	k := rec.Header(HeaderKind)
	return len(k) == len(KindMark) && string(k) == KindMark
}

// MarkHeaders are the headers of a time mark.
func MarkHeaders() []Header { return []Header{{Key: HeaderKind, Value: []byte(KindMark)}} }
