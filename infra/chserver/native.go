package chserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// reencodeNative rewrites chDB's Native output (always revision 0: no block
// info, no per-column serialization flag) at the revision the client asked
// for with client_protocol_version, as a server's HTTP handler would.
func (s *server) reencodeNative(data []byte, revision uint64) (out []byte, err error) {
	// The decoder is clickhouse-go's: a column type it mishandles must fail
	// this request, not the engine's goroutine.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("native block: %v", r)
		}
	}()
	loc, err := time.LoadLocation(s.timezone)
	if err != nil {
		loc = time.UTC
	}
	v := proto.ParseVersion(s.version)
	sc := &column.ServerContext{Revision: s.revision, VersionMajor: v.Major, VersionMinor: v.Minor, VersionPatch: v.Patch, Timezone: loc}
	rd := chproto.NewReader(bytes.NewReader(data))
	buf := &chproto.Buffer{Buf: make([]byte, 0, len(data)+64)}
	for {
		b := proto.Block{ServerContext: sc}
		if err := b.Decode(rd, 0); err != nil {
			if errors.Is(err, io.EOF) {
				return buf.Buf, nil
			}
			return nil, err
		}
		if err := b.Encode(buf, revision); err != nil {
			return nil, err
		}
	}
}
