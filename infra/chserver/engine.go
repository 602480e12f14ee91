package chserver

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The chDB C API (chdb.h of libchdb 26.x), bound at run time with purego as
// github.com/chdb-io/chdb-go/chdb-purego does. The binding is ours rather
// than chdb-go's because chdb-purego opens the library in init() and panics
// when it is missing: every binary importing it (the whole minecart CLI)
// would die at start-up on a machine without the 559 MB library, even for
// commands that never touch ClickHouse. Here the library is opened only when
// Serve starts. (chdb-purego v1.11 also passes the connection's address
// instead of the connection to chdb_stream_cancel_query.)
type chdbAPI struct {
	connect       func(argc int, argv []*byte) unsafe.Pointer // chdb_connection*
	closeConn     func(conn unsafe.Pointer)
	query         func(conn unsafe.Pointer, query string, format string) unsafe.Pointer // chdb_result*
	destroyResult func(res unsafe.Pointer)
	resultBuffer  func(res unsafe.Pointer) unsafe.Pointer
	resultLength  func(res unsafe.Pointer) uintptr
	resultElapsed func(res unsafe.Pointer) float64
	resultRows    func(res unsafe.Pointer) uint64
	resultBytes   func(res unsafe.Pointer) uint64
	storageRows   func(res unsafe.Pointer) uint64
	storageBytes  func(res unsafe.Pointer) uint64
	resultError   func(res unsafe.Pointer) unsafe.Pointer // const char*
	streamQuery   func(conn unsafe.Pointer, query string, format string) unsafe.Pointer
	streamFetch   func(conn unsafe.Pointer, res unsafe.Pointer) unsafe.Pointer
	streamCancel  func(conn unsafe.Pointer, res unsafe.Pointer)
}

var (
	apiOnce sync.Once
	api     *chdbAPI
	apiErr  error
)

// LibraryPath is where the engine library is looked for: $CHDB_LIB_PATH, else
// /usr/local/lib/libchdb.so (where infra/chdb/install.sh puts it).
func LibraryPath() string {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		return p
	}
	return "/usr/local/lib/libchdb.so"
}

// ErrNoLibrary is returned when libchdb.so cannot be loaded.
var ErrNoLibrary = errors.New("chserver: libchdb.so not loadable (run infra/chdb/install.sh)")

func loadAPI() (*chdbAPI, error) {
	apiOnce.Do(func() { api, apiErr = apiFrom(LibraryPath()) })
	return api, apiErr
}

// apiFrom opens the library at path and binds the functions minecart uses.
func apiFrom(path string) (*chdbAPI, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	a := &chdbAPI{}
	for name, fp := range map[string]any{
		"chdb_connect":                   &a.connect,
		"chdb_close_conn":                &a.closeConn,
		"chdb_query":                     &a.query,
		"chdb_destroy_query_result":      &a.destroyResult,
		"chdb_result_buffer":             &a.resultBuffer,
		"chdb_result_length":             &a.resultLength,
		"chdb_result_elapsed":            &a.resultElapsed,
		"chdb_result_rows_read":          &a.resultRows,
		"chdb_result_bytes_read":         &a.resultBytes,
		"chdb_result_storage_rows_read":  &a.storageRows,
		"chdb_result_storage_bytes_read": &a.storageBytes,
		"chdb_result_error":              &a.resultError,
		"chdb_stream_query":              &a.streamQuery,
		"chdb_stream_fetch_result":       &a.streamFetch,
		"chdb_stream_cancel_query":       &a.streamCancel,
	} {
		if _, err := purego.Dlsym(h, name); err != nil {
			return nil, fmt.Errorf("%w: symbol %s: %v", ErrNoLibrary, name, err)
		}
		purego.RegisterLibFunc(fp, h, name)
	}
	return a, nil
}

// engine is one chDB session. It is not safe for concurrent use: the server
// gives it to a single goroutine.
type engine struct {
	api  *chdbAPI
	conn unsafe.Pointer // chdb_connection* (address of the handle)
}

// result is a finished query's output, copied out of chDB's memory.
type result struct {
	data         []byte
	elapsed      float64 // seconds
	rowsRead     uint64  // result rows
	bytesRead    uint64  // result bytes
	storageRows  uint64  // rows read from storage
	storageBytes uint64
}

// openEngine loads the library and connects a session persisted in dir,
// with the engine configuration in configFile (engineConfig).
func openEngine(dir, configFile string) (*engine, error) {
	a, err := loadAPI()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	args := []string{"clickhouse", "--path=" + dir, "--config-file=" + configFile}
	argv := make([]*byte, len(args))
	keep := make([][]byte, len(args))
	for i, s := range args {
		keep[i] = append([]byte(s), 0)
		argv[i] = &keep[i][0]
	}
	var conn unsafe.Pointer
	withSignalsRestored(func() { conn = a.connect(len(argv), argv) })
	if conn == nil || *(*unsafe.Pointer)(conn) == nil {
		return nil, fmt.Errorf("chdb_connect %s: no connection", dir)
	}
	return &engine{api: a, conn: conn}, nil
}

// exec runs one statement and returns its output in format.
func (e *engine) exec(sql, format string) (*result, error) {
	if e.conn == nil {
		return nil, errors.New("engine closed")
	}
	res := e.api.query(*(*unsafe.Pointer)(e.conn), sql, format)
	if res == nil {
		return &result{}, nil
	}
	defer e.api.destroyResult(res)
	if p := e.api.resultError(res); p != nil {
		if msg := cString(p); msg != "" {
			return nil, parseEngineError(msg)
		}
	}
	r := &result{
		elapsed:      e.api.resultElapsed(res),
		rowsRead:     e.api.resultRows(res),
		bytesRead:    e.api.resultBytes(res),
		storageRows:  e.api.storageRows(res),
		storageBytes: e.api.storageBytes(res),
	}
	if n := e.api.resultLength(res); n > 0 {
		if buf := e.api.resultBuffer(res); buf != nil {
			r.data = append([]byte(nil), unsafe.Slice((*byte)(buf), n)...)
		}
	}
	return r, nil
}

// stream runs a statement with chDB's streaming API and hands each chunk
// of output to emit as it is produced. If emit returns an error the query
// is cancelled inside the engine and that error is returned. The returned
// result carries the totals (its data is nil).
func (e *engine) stream(sql, format string, emit func(chunk []byte) error) (*result, error) {
	if e.conn == nil {
		return nil, errors.New("engine closed")
	}
	conn := *(*unsafe.Pointer)(e.conn)
	st := e.api.streamQuery(conn, sql, format)
	if st == nil {
		return &result{}, nil
	}
	defer e.api.destroyResult(st)
	if err := e.resultErr(st); err != nil {
		return nil, err
	}
	total := &result{}
	for {
		ch := e.api.streamFetch(conn, st)
		if ch == nil {
			return total, nil
		}
		if err := e.resultErr(ch); err != nil {
			e.api.destroyResult(ch)
			return nil, err
		}
		n := e.api.resultLength(ch)
		total.elapsed += e.api.resultElapsed(ch)
		total.rowsRead += e.api.resultRows(ch)
		total.bytesRead += e.api.resultBytes(ch)
		total.storageRows += e.api.storageRows(ch)
		total.storageBytes += e.api.storageBytes(ch)
		var err error
		if n > 0 {
			if buf := e.api.resultBuffer(ch); buf != nil {
				// emit must not keep the slice: chDB frees it below.
				err = emit(unsafe.Slice((*byte)(buf), n))
			}
		}
		e.api.destroyResult(ch)
		if n == 0 {
			return total, nil
		}
		if err != nil {
			e.api.streamCancel(conn, st)
			return nil, err
		}
	}
}

func (e *engine) resultErr(res unsafe.Pointer) error {
	if p := e.api.resultError(res); p != nil {
		if msg := cString(p); msg != "" {
			return parseEngineError(msg)
		}
	}
	return nil
}

func (e *engine) close() {
	if e.conn != nil {
		e.api.closeConn(e.conn)
		e.conn = nil
	}
}

func cString(p unsafe.Pointer) string {
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}
