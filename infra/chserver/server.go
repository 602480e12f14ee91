// Package chserver is minecart's embedded ClickHouse: the chDB engine
// (ClickHouse as a library, libchdb.so) with its data in a directory, served
// over ClickHouse's own HTTP interface, so that clickhouse-go/v2 with
// Protocol: clickhouse.HTTP, curl and any other ClickHouse HTTP client work
// against it as against a server.
//
// What the interface covers: the query in the URL (?query=) or the body,
// insert data in the POST body (any input format, gzip/deflate/br/zstd
// Content-Encoding, or ClickHouse's LZ4/ZSTD blocks with decompress=1;
// compress=1 and enable_http_compression for responses), default_format, database, query_id, settings and
// param_* query parameters as URL parameters, X-ClickHouse-* response headers
// (Query-Id, Format, Timezone, Summary, Exception-Code), ClickHouse error
// bodies ("Code: 62. DB::Exception: ...") with the server's HTTP statuses,
// /ping and /replicas_status, and Native output at the revision the client
// asks for with client_protocol_version.
//
// chDB allows one session per process and replaces the process's fatal
// signal handlers, so the server is meant to run in a process of its own
// (`minecart clickhouse`); Serve also puts Go's handlers back after
// connecting. One goroutine owns the session and runs requests from a queue,
// one statement at a time: chDB runs the statements of a connection one
// after the other whatever the number of calling threads (measured: four
// concurrent calls of a 0.43 s query took 1.78 s), so the queue costs
// nothing the engine would give. What it does per request is kept small:
// one SET for all of a request's settings and query parameters (applied as
// a difference to the previous request's), and the statement check's
// rendering cached by statement text.
//
// Large results: SELECTs in row formats (Native, TabSeparated, CSV,
// JSONEachRow, RowBinary, ...) run on chDB's streaming API; up to
// Config.StreamAfterBytes of output is buffered and answered with a
// Content-Length and an exact X-ClickHouse-Summary, beyond that the response
// is streamed, and an error after that point is reported in the body with
// ClickHouse's "__exception__" marker, which clickhouse-go recognises.
//
// Cancellation: a request whose client went away before its turn is dropped
// from the queue; a streaming SELECT whose client goes away is cancelled
// inside the engine at the next chunk. Other statements (INSERT, DDL,
// buffered formats) cannot be interrupted once chDB runs them: the HTTP
// side returns at once and the statement finishes in the background; bound
// them with the max_execution_time setting, which chDB enforces.
package chserver

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/andybalholm/brotli"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
)

// Config configures Serve.
type Config struct {
	// Addr is the HTTP listen address (default "127.0.0.1:8123"; port 0
	// picks a free one, reported to OnListen).
	Addr string
	// DataDir holds the databases (chDB's --path). Required.
	DataDir string
	// Logger receives start/stop and failed-request logs (default: discard).
	Logger *slog.Logger
	// QueueSize bounds the requests waiting for the engine (default 256);
	// beyond it the server answers 503 (TOO_MANY_SIMULTANEOUS_QUERIES).
	QueueSize int
	// MaxQueryBytes bounds a query read from the request body
	// (default 64 MiB); insert data in the body is not bounded.
	MaxQueryBytes int64
	// StreamAfterBytes is how much of a SELECT's output is buffered before
	// the response is streamed (chunked, no Content-Length, errors after
	// that point reported in-band) instead of sent whole (default 16 MiB).
	// Results larger than it are never held in memory as a whole.
	StreamAfterBytes int
	// OnListen, if set, is called with the bound address once the server
	// accepts connections.
	OnListen func(addr net.Addr)
	// Users are the accounts of the HTTP interface (at least one): every
	// query request must authenticate as one of them (users.go).
	Users []User
	// Limits bound every query of a readonly user (defaults in Limits).
	Limits Limits
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8123"
	}
	if c.DataDir == "" {
		return errors.New("chserver: DataDir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.MaxQueryBytes <= 0 {
		c.MaxQueryBytes = 64 << 20
	}
	if c.StreamAfterBytes <= 0 {
		c.StreamAfterBytes = 16 << 20
	}
	if len(c.Users) == 0 {
		return errors.New("chserver: no users: the HTTP interface refuses to run without credentials (Config.Users)")
	}
	c.Limits.defaults()
	return nil
}

// Serve opens the engine in cfg.DataDir, serves ClickHouse's HTTP interface
// on cfg.Addr until ctx is done, then shuts down cleanly: in-flight requests
// finish (up to 30 s), queued ones are answered, the session is closed.
func Serve(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	users, err := newAccounts(cfg.Users, cfg.QueueSize)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("chserver: data dir: %w", err)
	}
	// The databases, the engine's configuration and spooled inserts are
	// the stack user's alone.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	tmpDir := filepath.Join(dataDir, "http_tmp")
	// Spooled insert data left by a crash is garbage: start empty.
	if err := os.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	engineConfig, err := writeEngineConfig(filepath.Join(dataDir, "engine"))
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	eng, err := openEngine(filepath.Join(dataDir, "chdb"), engineConfig)
	if err != nil {
		ln.Close()
		return fmt.Errorf("chserver: %w", err)
	}
	s := &server{cfg: cfg, tmpDir: tmpDir, eng: eng, jobs: make(chan *job, cfg.QueueSize), users: users,
		sess: session{set: map[string]string{}}, rendered: renderCache{m: map[string]string{}}}
	if err := s.hello(); err != nil {
		eng.close()
		ln.Close()
		return fmt.Errorf("chserver: %w", err)
	}
	ownerDone := make(chan struct{})
	go func() {
		defer close(ownerDone)
		s.own()
	}()
	// Timeouts like every server of the project (services/daemon.NewServer,
	// which infrastructure does not import), sized for ClickHouse: a
	// request body (an insert) must arrive within 5 minutes, a response
	// (the query's run included) be written within 10; a query in the URL
	// may be long, so the request line and headers may take 1 MiB.
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	cfg.Logger.Info("clickhouse serving", "addr", ln.Addr().String(), "data_dir", dataDir,
		"version", s.version, "library", LibraryPath())
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr())
	}

	select {
	case <-ctx.Done():
		err = nil
	case err = <-serveErr:
		err = fmt.Errorf("chserver: %w", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e := srv.Shutdown(shCtx); e != nil && err == nil {
		err = fmt.Errorf("chserver: shutdown: %w", e)
	}
	close(s.jobs)
	<-ownerDone
	eng.close()
	cfg.Logger.Info("clickhouse stopped", "addr", ln.Addr().String())
	return err
}

type server struct {
	cfg    Config
	tmpDir string
	eng    *engine
	jobs   chan *job
	users  map[string]*account
	policy *policy
	// Owned by the goroutine running jobs (own).
	sess     session
	rendered renderCache

	display  string
	version  string
	timezone string
	revision uint64
}

// job is one request's work for the engine's owner.
type job struct {
	ctx context.Context
	// settings are the request's settings and query parameters, in name
	// order, each an assignment "name = literal": the owner brings the
	// shared session to exactly these (session, below) before sql runs.
	settings []assignment
	setup    []string // USE statements run before sql
	sql      string
	format   string
	teardown []string // statements that undo setup, run whatever happens
	// emit, if set, receives the output chunk by chunk (streaming API)
	// instead of the result's data; it runs on the engine's goroutine.
	emit func(chunk []byte) error
	// canonical, if set, is the statement the engine's own parser must
	// accept, and check is run on the engine's rendering of it
	// (formatQuerySingleLine) before anything else: the statement check
	// then sees what the engine parsed, comments and quoting resolved.
	canonical string
	check     func(rendered string) error
	done      chan jobResult
}

type jobResult struct {
	res *result
	err error
}

// assignment is one setting of a request: SET name = value.
type assignment struct{ name, value string }

// session is what the owner goroutine has set in the engine's one session:
// the settings and query parameters the last job left (the engine keeps a
// SET until it is undone). Before a job runs, one SET statement brings the
// session from this state to exactly the job's settings: new or changed
// values, and "name = DEFAULT" for what the job does not set. That is the
// effect of a SET before and a SET ... = DEFAULT after every request, in
// one engine call instead of two per setting (each call costs 0.1-0.2 ms
// of the engine's one thread, measured). Only the owner goroutine uses it.
type session struct {
	set map[string]string // name -> value literal as SET
}

// applyStatement returns the SET statement that turns the session's state
// into want (sorted by name), or "" when nothing changes.
func (ss *session) applyStatement(want []assignment) string {
	var b strings.Builder
	add := func(name, value string) {
		if b.Len() == 0 {
			b.WriteString("SET ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(name)
		b.WriteString(" = ")
		b.WriteString(value)
	}
	wanted := make(map[string]bool, len(want))
	for _, a := range want {
		wanted[a.name] = true
		if v, ok := ss.set[a.name]; !ok || v != a.value {
			add(a.name, a.value)
		}
	}
	for _, name := range sortedKeys(ss.set) {
		if !wanted[name] {
			add(name, "DEFAULT")
		}
	}
	return b.String()
}

// apply brings the engine's session to want. On an error (a bad setting
// name or value) the session is reset name by name to every default it
// may hold, and the error is returned.
func (s *server) apply(want []assignment) error {
	q := s.sess.applyStatement(want)
	if q == "" {
		return nil
	}
	if _, err := s.eng.exec(q, "TabSeparated"); err != nil {
		names := map[string]string{}
		for k, v := range s.sess.set {
			names[k] = v
		}
		for _, a := range want {
			names[a.name] = a.value
		}
		for _, name := range sortedKeys(names) {
			if _, e := s.eng.exec("SET "+name+" = DEFAULT", "TabSeparated"); e != nil {
				s.cfg.Logger.Debug("clickhouse: reset request setting", "name", name, "err", e)
			}
		}
		clear(s.sess.set)
		return err
	}
	clear(s.sess.set)
	for _, a := range want {
		s.sess.set[a.name] = a.value
	}
	return nil
}

// renderCache keeps the engine's rendering (formatQuerySingleLine at the
// default settings) of statements it has rendered, by their exact text:
// the rendering depends only on the text, and an application sends the
// same few parameterised statements over and over. Each hit saves an
// engine call (~0.5 ms, measured). Bounded: statements over 64 KiB are not
// kept, and the cache is emptied when it holds 16 MiB of text.
type renderCache struct {
	m     map[string]string
	bytes int
}

const (
	renderCacheMaxStmt  = 64 << 10
	renderCacheMaxBytes = 16 << 20
)

func (c *renderCache) get(sql string) (string, bool) {
	r, ok := c.m[sql]
	return r, ok
}

func (c *renderCache) put(sql, rendered string) {
	if len(sql) > renderCacheMaxStmt {
		return
	}
	if c.bytes+len(sql)+len(rendered) > renderCacheMaxBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[sql] = rendered
	c.bytes += len(sql) + len(rendered)
}

// own runs queued jobs one at a time until the queue is closed.
func (s *server) own() {
	for j := range s.jobs {
		if err := j.ctx.Err(); err != nil {
			j.done <- jobResult{err: newException(codeQueryWasCancelled, "QUERY_WAS_CANCELLED", "Query was cancelled before it started")}
			continue
		}
		j.done <- s.run(j)
	}
}

func (s *server) run(j *job) (out jobResult) {
	if j.check != nil {
		rendered, ok := s.rendered.get(j.canonical)
		if !ok {
			// Rendered at the default settings, as every statement is.
			if err := s.apply(nil); err != nil {
				return jobResult{err: err}
			}
			r, err := s.eng.exec("SELECT formatQuerySingleLine("+quoteString(j.canonical)+")", "RawBLOB")
			if err != nil {
				return jobResult{err: err}
			}
			rendered = string(r.data)
			s.rendered.put(j.canonical, rendered)
		}
		if err := j.check(rendered); err != nil {
			return jobResult{err: err}
		}
	}
	defer func() {
		for _, q := range j.teardown {
			if _, err := s.eng.exec(q, "TabSeparated"); err != nil {
				s.cfg.Logger.Error("clickhouse: undo request setting", "sql", q, "err", err)
			}
		}
	}()
	for _, q := range j.setup {
		if _, err := s.eng.exec(q, "TabSeparated"); err != nil {
			return jobResult{err: err}
		}
	}
	if err := s.apply(j.settings); err != nil {
		return jobResult{err: err}
	}
	if j.emit != nil {
		res, err := s.eng.stream(j.sql, j.format, j.emit)
		return jobResult{res: res, err: err}
	}
	res, err := s.eng.exec(j.sql, j.format)
	return jobResult{res: res, err: err}
}

// hello reads the engine's identity, as a client's handshake would.
func (s *server) hello() error {
	r, err := s.eng.exec("SELECT displayName(), version(), revision(), timezone()", "TabSeparated")
	if err != nil {
		return err
	}
	f := strings.Split(strings.TrimRight(string(r.data), "\n"), "\t")
	if len(f) != 4 {
		return fmt.Errorf("unexpected hello %q", r.data)
	}
	s.display, s.version, s.timezone = f[0], f[1], f[3]
	if s.revision, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return err
	}
	// The checker's deny-list: every table function and engine the engine
	// knows, but the allowed ones.
	var lists [3][]string
	for i, q := range []string{"SELECT name FROM system.table_functions", "SELECT name FROM system.table_engines",
		"SELECT name FROM system.settings UNION ALL SELECT name FROM system.merge_tree_settings"} {
		r, err := s.eng.exec(q, "TabSeparated")
		if err != nil {
			return err
		}
		lists[i] = strings.Fields(string(r.data))
	}
	if len(lists[0]) == 0 || len(lists[1]) == 0 {
		return errors.New("the engine lists no table functions or engines")
	}
	s.policy = newPolicy(lists[0], lists[1], lists[2], s.cfg.Limits)
	return nil
}

// submit queues j and waits for its result or for ctx to end.
func (s *server) submit(ctx context.Context, j *job) (*result, error) {
	j.ctx = ctx
	j.done = make(chan jobResult, 1)
	select {
	case s.jobs <- j:
	default:
		return nil, newException(codeTooManySimultaneousReqs, "TOO_MANY_SIMULTANEOUS_QUERIES",
			fmt.Sprintf("Too many simultaneous queries. Maximum: %d", cap(s.jobs)))
	}
	select {
	case r := <-j.done:
		return r.res, r.err
	case <-ctx.Done():
		if j.emit != nil {
			// emit writes to the response: wait until the engine, which
			// sees ctx at the next chunk, has stopped calling it.
			<-j.done
		}
		return nil, newException(codeQueryWasCancelled, "QUERY_WAS_CANCELLED", "Query was cancelled")
	}
}

// params that are not settings.
var reservedParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "user": true, "password": true,
	"query_id": true, "quota_key": true, "session_id": true, "session_timeout": true,
	"session_check": true, "compress": true, "decompress": true, "client_protocol_version": true,
	"buffer_size": true, "wait_end_of_query": true, "role": true, "stacktrace": true,
	"enable_http_compression": true, "http_zlib_compression_level": true, "readonly": true,
	"http_native_compression_disable_checksumming_on_decompress": true,
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ping", "/replicas_status":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method not allowed\n", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		io.WriteString(w, "Ok.\n")
		return
	case "/":
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "There is no handle %s\n\nUse / or /ping for health checks.\nOr /replicas_status for more sophisticated health checks.\n\nSend queries from your program with POST method or GET /?query=...\n", r.URL.Path)
		return
	}
	// Parameters come from the URL only: the body is the query or the
	// insert data whatever its Content-Type (curl --data-binary sends
	// application/x-www-form-urlencoded).
	params := r.URL.Query()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if _, ok := params["query"]; !ok {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			io.WriteString(w, "Ok.\n")
			return
		}
	}
	queryID := params.Get("query_id")
	if queryID == "" {
		queryID = uuid.NewString()
	}
	w.Header().Set("X-ClickHouse-Server-Display-Name", s.display)
	w.Header().Set("X-ClickHouse-Query-Id", queryID)
	w.Header().Set("X-ClickHouse-Timezone", s.timezone)

	if why := browserRequest(r); why != "" {
		s.cfg.Logger.Warn("clickhouse: browser request refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		s.writeError(w, r, queryID, newException(codeAccessDenied, "ACCESS_DENIED", why))
		return
	}
	u, err := s.authenticate(r, params)
	if err != nil {
		s.cfg.Logger.Warn("clickhouse: authentication failed", "remote", r.RemoteAddr, "err", err)
		s.writeError(w, r, queryID, err)
		return
	}
	select {
	case u.sem <- struct{}{}:
		defer func() { <-u.sem }()
	default:
		s.writeError(w, r, queryID, newException(codeTooManySimultaneousReqs, "TOO_MANY_SIMULTANEOUS_QUERIES",
			fmt.Sprintf("Too many simultaneous queries for user %s. Maximum: %d", u.Name, cap(u.sem))))
		return
	}
	if err := s.handle(w, r, params, u); err != nil {
		s.writeError(w, r, queryID, err)
	}
}

// handle runs one query request; errors are written by the caller.
func (s *server) handle(w http.ResponseWriter, r *http.Request, params url.Values, u *account) error {
	var body io.Reader = http.NoBody
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		b, err := decodeBody(r)
		if err != nil {
			return err
		}
		if params.Get("decompress") == "1" {
			// ClickHouse's own framing: checksummed LZ4/ZSTD blocks.
			b = framedReader{compress.NewReader(b)}
		}
		body = b
	}
	readonly := r.Method == http.MethodGet || params.Get("readonly") == "1" || params.Get("readonly") == "2" || u.Role == RoleReadonly

	sql := params.Get("query")
	var insert insertHead
	isInsert := false
	var dataReader io.Reader
	if sql == "" {
		// The whole body is the query; an INSERT's data follows it.
		br := &prefixReader{r: body}
		head, err := br.peek(64 << 10)
		if err != nil {
			return err
		}
		if kindOf(head) == stmtInsert {
			if h, ok := parseInsert(head); ok && (h.format != "Values" || len(head) < 64<<10) {
				insert, isInsert = h, true
				// Everything after the head is data: the parsed inline
				// part of the peeked prefix, then the rest of the body.
				dataReader = io.MultiReader(strings.NewReader(h.inline), br.rest())
			}
		}
		if !isInsert {
			all, err := io.ReadAll(io.LimitReader(io.MultiReader(strings.NewReader(head), br.rest()), s.cfg.MaxQueryBytes+1))
			if err != nil {
				return newException(codeCannotParseInput, "CANNOT_READ_ALL_DATA", "Cannot read the request body: "+err.Error())
			}
			if int64(len(all)) > s.cfg.MaxQueryBytes {
				return newException(codeSyntaxError, "SYNTAX_ERROR", "Query is too large")
			}
			sql = string(all)
		}
	} else if kindOf(sql) == stmtInsert {
		if h, ok := parseInsert(sql); ok {
			insert, isInsert = h, true
			sep := ""
			if h.inline != "" {
				sep = "\n"
			}
			dataReader = io.MultiReader(strings.NewReader(h.inline+sep), body)
		}
	} else {
		// ClickHouse appends the body to the query from the URL.
		rest, err := io.ReadAll(io.LimitReader(body, s.cfg.MaxQueryBytes+1))
		if err != nil {
			return newException(codeCannotParseInput, "CANNOT_READ_ALL_DATA", "Cannot read the request body: "+err.Error())
		}
		if len(rest) > 0 {
			sql = sql + "\n" + string(rest)
		}
	}
	if strings.TrimSpace(skipSpaceAndComments(sql)) == "" && !isInsert {
		return newException(codeSyntaxError, "SYNTAX_ERROR", "Empty query")
	}
	kind := kindOf(sql)
	if isInsert {
		kind = stmtInsert
	}
	if readonly && (kind == stmtInsert || kind == stmtWrite) && firstWord(sql) != "SET" && firstWord(sql) != "USE" {
		if u.Role == RoleReadonly {
			return newException(codeReadonly, "READONLY", fmt.Sprintf("%s: Cannot execute query in readonly mode: user %s is read-only", u.Name, u.Name))
		}
		return newException(codeReadonly, "READONLY", "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries")
	}
	// The statement check (guard.go) sees exactly the text the engine
	// will run, but for the path of spooled insert data.
	if !isInsert {
		if err := s.policy.checkStatement(u, sql, -1); err != nil {
			return err
		}
		for _, name := range placeholders(sql) {
			if !params.Has("param_" + name) {
				return newException(codeUnknownQueryParameter, "UNKNOWN_QUERY_PARAMETER",
					"Substitution `"+name+"` is not set")
			}
		}
	}

	j := &job{}
	if err := s.requestSettings(j, params, u); err != nil {
		return err
	}
	if !isInsert {
		j.canonical = sql
		j.check = func(rendered string) error {
			if err := s.policy.checkStatement(u, rendered, -1); err != nil {
				var ex *Exception
				if errors.As(err, &ex) && ex.Code == codeSyntaxError {
					// The rendering is the engine's: a construct the
					// checker does not model is refused, as in the text.
					return accessDenied("%s: refused after the engine's parse: %s", u.Name, ex.Text)
				}
				return err
			}
			return nil
		}
	}
	format := params.Get("default_format")
	if format == "" {
		format = "TabSeparated"
	}
	if isInsert {
		if strings.EqualFold(insert.format, "Values") {
			// Values data holds expressions the engine evaluates: check
			// it as SQL, whole.
			data, err := io.ReadAll(io.LimitReader(dataReader, s.cfg.MaxQueryBytes+1))
			if err != nil {
				return newException(codeCannotParseInput, "CANNOT_READ_ALL_DATA", "Cannot read the request body: "+err.Error())
			}
			if int64(len(data)) > s.cfg.MaxQueryBytes {
				return newException(codeSyntaxError, "SYNTAX_ERROR", "VALUES data is too large: send it in another format")
			}
			if err := s.policy.checkStatement(u, "INSERT INTO t VALUES "+string(data), -1); err != nil {
				return err
			}
			dataReader = bytes.NewReader(data)
		}
		path, err := s.spool(dataReader)
		if err != nil {
			return err
		}
		defer os.Remove(path)
		j.sql = insert.infileSQL(path)
		if err := s.policy.checkStatement(u, j.sql, insert.infileAt()); err != nil {
			return err
		}
	} else {
		j.sql = sql
		if f := explicitFormat(sql); f != "" {
			format = f
		}
		// Without a session (session_id is not supported) SET and USE
		// last for their own request only, as on a server: the engine's
		// session is shared by every client.
		switch firstWord(sql) {
		case "SET":
			rest := strings.TrimSuffix(strings.TrimSpace(skipSpaceAndComments(sql)[len("SET"):]), ";")
			j.sql = "SELECT 1 FORMAT Null SETTINGS " + rest // validates names and values, changes nothing
		case "USE":
			j.teardown = append(j.teardown, "USE default")
		}
	}
	j.format = format
	if multiStatement(j.sql) {
		return newException(codeSyntaxError, "SYNTAX_ERROR", "Multi-statements are not allowed")
	}
	rev, _ := strconv.ParseUint(params.Get("client_protocol_version"), 10, 64)
	native := strings.EqualFold(format, "Native")
	var sr *streamResponse
	if fw := firstWord(sql); !isInsert && (fw == "SELECT" || fw == "WITH") && streamable(format) {
		sr = &streamResponse{s: s, w: w, ctx: r.Context(), native: native && rev > 0, rev: rev, format: format,
			limit: s.cfg.StreamAfterBytes, mayStream: params.Get("compress") != "1" && params.Get("enable_http_compression") != "1"}
		j.emit = sr.emit
	}

	res, err := s.submit(r.Context(), j)
	if sr != nil && sr.started {
		// The chunk deadlines must not outlive this response on a
		// kept-alive connection.
		defer http.NewResponseController(w).SetWriteDeadline(time.Time{})
		// Headers are out: a failure can only be reported in the body, the
		// way ClickHouse does it (clickhouse-go detects the marker).
		if err != nil {
			var ex *Exception
			if !errors.As(err, &ex) {
				ex = newException(codeUnknownException, "UNKNOWN_EXCEPTION", err.Error())
			}
			if r.Context().Err() == nil {
				io.WriteString(w, "\r\n__exception__\r\n"+ex.Text+" (version "+s.version+")\n")
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	out := res.data
	if sr != nil {
		out = sr.buf
	}
	if kind == stmtInsert || kind == stmtWrite {
		out = nil
	}
	if native && len(out) > 0 && sr == nil {
		if rev > 0 {
			out, err = s.reencodeNative(out, rev)
			if err != nil {
				return newException(codeUnknownException, "UNKNOWN_EXCEPTION", "Native re-encoding: "+err.Error())
			}
		}
	}
	written := uint64(0)
	resultRows, resultBytes := res.rowsRead, res.bytesRead
	if kind == stmtInsert {
		written, resultRows, resultBytes = res.rowsRead, 0, 0
	}
	h := w.Header()
	h.Set("X-ClickHouse-Format", format)
	h.Set("Content-Type", contentType(format))
	h.Set("X-ClickHouse-Summary", fmt.Sprintf(`{"read_rows":"%d","read_bytes":"%d","written_rows":"%d","written_bytes":"%d","total_rows_to_read":"%d","result_rows":"%d","result_bytes":"%d","elapsed_ns":"%d"}`,
		res.storageRows, res.storageBytes, written, res.bytesRead*btoi(kind == stmtInsert), res.storageRows,
		resultRows, resultBytes, int64(res.elapsed*1e9)))
	return writeBody(w, r, params, out)
}

func btoi(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// requestSettings turns URL parameters into the job's settings, which the
// owner applies to the shared session before the query (one SET bringing
// it from the previous job's settings to these, see session). Settings
// are checked against u's allow-list; a readonly user's limits are set on
// every request (lowered by its own settings, never raised). Query
// parameters (param_NAME) are always passed as string literals: the
// engine keeps their text as sent and the placeholder's type parses it,
// as a server does with {NAME:Type}.
func (s *server) requestSettings(j *job, params url.Values, u *account) error {
	if db := params.Get("database"); db != "" && db != "default" {
		if !identRe.MatchString(db) {
			return newException(codeUnknownDatabase, "UNKNOWN_DATABASE", "Database "+db+" does not exist")
		}
		j.setup = append(j.setup, "USE "+db)
		j.teardown = append(j.teardown, "USE default")
	}
	settings := map[string]string{}
	for k, vs := range params {
		if reservedParams[k] || len(vs) == 0 {
			continue
		}
		if name, ok := strings.CutPrefix(k, "param_"); ok {
			if !identRe.MatchString(name) {
				return newException(codeBadArguments, "BAD_ARGUMENTS", "Query parameter names must match "+identRe.String()+": "+quoteString(k))
			}
			settings[k] = vs[len(vs)-1]
			continue
		}
		if !identRe.MatchString(k) {
			continue // external table structure and such: not a setting name
		}
		if strings.HasSuffix(k, "_format") && k != "output_format" || strings.HasSuffix(k, "_structure") || strings.HasSuffix(k, "_types") {
			// External tables' parameters are not supported (multipart only).
			if params.Has(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(k, "_format"), "_structure"), "_types") + "_structure") {
				continue
			}
		}
		if err := s.policy.checkSetting(u, k, vs[len(vs)-1], true); err != nil {
			return err
		}
		settings[k] = vs[len(vs)-1]
	}
	if u.Role == RoleReadonly {
		for name, c := range s.policy.limits.caps() {
			if _, ok := settings[name]; !ok {
				settings[name] = strconv.FormatInt(c, 10)
			}
		}
	}
	for _, k := range sortedKeys(settings) {
		set, err := setStatement(k, settings[k])
		if err != nil {
			return err
		}
		j.settings = append(j.settings, assignment{k, strings.TrimPrefix(set, "SET "+k+" = ")})
	}
	return nil
}

// setStatement is the SET statement of one URL parameter: a query
// parameter's value is always a string literal (its exact text); a
// setting's value is a number when it is one, a string literal otherwise
// (the engine converts it to the setting's type).
func setStatement(name, value string) (string, error) {
	if !identRe.MatchString(name) {
		return "", newException(codeBadArguments, "BAD_ARGUMENTS", "Bad parameter name "+quoteString(name))
	}
	if strings.HasPrefix(name, "param_") {
		return "SET " + name + " = " + quoteString(value), nil
	}
	return "SET " + name + " = " + settingLiteral(value), nil
}

// spool writes insert data to a temporary file for INSERT ... FROM INFILE.
func (s *server) spool(data io.Reader) (string, error) {
	f, err := os.CreateTemp(s.tmpDir, "insert-*.dat")
	if err != nil {
		return "", newException(codeUnknownException, "CANNOT_OPEN_FILE", "insert spool: "+err.Error())
	}
	_, err = io.Copy(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", newException(codeUnexpectedEndOfFile, "CANNOT_READ_ALL_DATA", "Cannot read all insert data: "+err.Error())
	}
	return f.Name(), nil
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, queryID string, err error) {
	var ex *Exception
	if !errors.As(err, &ex) {
		ex = newException(codeUnknownException, "UNKNOWN_EXCEPTION", err.Error())
	}
	if ex.Code == codeQueryWasCancelled && r.Context().Err() != nil {
		s.cfg.Logger.Debug("clickhouse: request cancelled by client", "query_id", queryID)
		return
	}
	s.cfg.Logger.Debug("clickhouse: request failed", "query_id", queryID, "code", ex.Code, "err", ex.Text)
	h := w.Header()
	h.Del("X-ClickHouse-Format")
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(ex.Code))
	status := httpStatus(ex.Code)
	w.WriteHeader(status)
	io.WriteString(w, ex.Text+" (version "+s.version+")\n")
}

// contentType is the Content-Type ClickHouse sends for a format.
func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case strings.HasPrefix(f, "tabseparated") || strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	case f == "csvwithnames" || f == "csvwithnamesandtypes":
		return "text/csv; charset=UTF-8; header=present"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case f == "jsoneachrow" || f == "jsonlines" || f == "ndjson" || strings.HasPrefix(f, "jsoncompacteachrow") || strings.HasPrefix(f, "jsonstringseachrow"):
		return "application/x-ndjson; charset=UTF-8"
	case strings.HasPrefix(f, "json"):
		return "application/json; charset=UTF-8"
	case f == "native" || strings.HasPrefix(f, "rowbinary") || f == "parquet" || f == "arrow" || f == "arrowstream" || f == "orc" || f == "avro" || f == "protobuf" || f == "msgpack":
		return "application/octet-stream"
	case f == "xml":
		return "application/xml; charset=UTF-8"
	}
	return "text/plain; charset=UTF-8"
}

// decodeBody undoes the request's Content-Encoding.
func decodeBody(r *http.Request) (io.Reader, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity", "none":
		return r.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, newException(codeCannotParseInput, "CANNOT_DECOMPRESS", "gzip body: "+err.Error())
		}
		return zr, nil
	case "deflate":
		zr, err := zlib.NewReader(r.Body)
		if err != nil {
			return nil, newException(codeCannotParseInput, "CANNOT_DECOMPRESS", "deflate body: "+err.Error())
		}
		return zr, nil
	case "br":
		return brotli.NewReader(r.Body), nil
	case "zstd":
		zr, err := zstd.NewReader(r.Body)
		if err != nil {
			return nil, newException(codeCannotParseInput, "CANNOT_DECOMPRESS", "zstd body: "+err.Error())
		}
		return zr.IOReadCloser(), nil
	default:
		return nil, newException(codeNotImplemented, "NOT_IMPLEMENTED", "Unknown HTTP Content-Encoding: "+enc)
	}
}

// writeBody writes the result, compressed when the client enabled HTTP
// compression and accepts an encoding.
func writeBody(w http.ResponseWriter, r *http.Request, params url.Values, out []byte) error {
	if params.Get("compress") == "1" && len(out) > 0 {
		framed, err := nativeCompress(out, params.Get("network_compression_method"), params.Get("network_zstd_compression_level"))
		if err != nil {
			return err
		}
		out = framed
	}
	enc := ""
	if params.Get("enable_http_compression") == "1" {
		for _, e := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
			e = strings.TrimSpace(strings.SplitN(e, ";", 2)[0])
			if e == "gzip" || e == "deflate" || e == "br" || e == "zstd" {
				enc = e
				break
			}
		}
	}
	if enc == "" || len(out) == 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		_, err := w.Write(out)
		return ignoreClientGone(err)
	}
	var buf bytes.Buffer
	var zw io.WriteCloser
	switch enc {
	case "gzip":
		zw = gzip.NewWriter(&buf)
	case "deflate":
		zw, _ = zlib.NewWriterLevel(&buf, flate.DefaultCompression)
	case "br":
		zw = brotli.NewWriter(&buf)
	case "zstd":
		zw, _ = zstd.NewWriter(&buf)
	}
	if _, err := zw.Write(out); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	w.Header().Set("Content-Encoding", enc)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, err := w.Write(buf.Bytes())
	return ignoreClientGone(err)
}

// framedReader ends cleanly (io.EOF) when the compressed stream ends between
// blocks; ch-go's reader reports that as a wrapped EOF error.
type framedReader struct{ r io.Reader }

func (f framedReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// streamable formats are those whose output of a whole result is the
// concatenation of the outputs of its parts: chDB's streaming API formats
// every chunk on its own, so formats with a header or a document around the
// rows (CSVWithNames, JSON, Pretty, Parquet, ...) are run unstreamed.
func streamable(format string) bool {
	switch strings.ToLower(format) {
	case "native", "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "csv", "jsoneachrow", "jsonlines",
		"ndjson", "jsoncompacteachrow", "jsonstringseachrow", "jsoncompactstringseachrow", "rowbinary",
		"values", "lineasstring", "rawblob":
		return true
	}
	return false
}

// streamWriteTimeout bounds how long one streamed chunk may wait for the
// client to read it.
const streamWriteTimeout = 30 * time.Second

// streamResponse buffers a SELECT's output up to limit bytes and then
// streams it. emit runs on the engine's goroutine while the handler waits.
type streamResponse struct {
	s         *server
	w         http.ResponseWriter
	ctx       context.Context
	native    bool // re-encode Native chunks at rev
	rev       uint64
	format    string
	limit     int
	mayStream bool // false when the response is compressed as a whole

	buf     []byte
	started bool
}

func (sr *streamResponse) emit(chunk []byte) error {
	if err := sr.ctx.Err(); err != nil {
		return newException(codeQueryWasCancelled, "QUERY_WAS_CANCELLED", "Query was cancelled: client went away")
	}
	data := chunk
	if sr.native {
		var err error
		if data, err = sr.s.reencodeNative(chunk, sr.rev); err != nil {
			return newException(codeUnknownException, "UNKNOWN_EXCEPTION", "Native re-encoding: "+err.Error())
		}
	}
	if !sr.started {
		sr.buf = append(sr.buf, data...) // copies: chunk belongs to chDB
		if !sr.mayStream || len(sr.buf) <= sr.limit {
			return nil
		}
		h := sr.w.Header()
		h.Set("X-ClickHouse-Format", sr.format)
		h.Set("Content-Type", contentType(sr.format))
		sr.w.WriteHeader(http.StatusOK)
		sr.started = true
		data, sr.buf = sr.buf, nil
	}
	// A client that stops reading must not hold the engine (every other
	// request waits for it): give each chunk a deadline.
	_ = http.NewResponseController(sr.w).SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := sr.w.Write(data); err != nil {
		return newException(codeQueryWasCancelled, "QUERY_WAS_CANCELLED", "Query was cancelled: "+err.Error())
	}
	if f, ok := sr.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// nativeCompress frames out in ClickHouse's compressed blocks (compress=1),
// as the server does for clients that ask for it (clickhouse-go over HTTP
// with LZ4 or ZSTD compression).
func nativeCompress(out []byte, method, level string) ([]byte, error) {
	m := compress.LZ4
	switch strings.ToUpper(method) {
	case "", "LZ4":
	case "ZSTD":
		m = compress.ZSTD
	case "NONE":
		m = compress.None
	default:
		return nil, newException(codeBadArguments, "BAD_ARGUMENTS", "Unknown network_compression_method "+method)
	}
	lvl, _ := strconv.Atoi(level)
	cw := compress.NewWriter(compress.Level(max(lvl, 0)), m)
	const frame = 1 << 20
	var buf []byte
	for len(out) > 0 {
		n := min(len(out), frame)
		if err := cw.Compress(out[:n]); err != nil {
			return nil, newException(codeUnknownException, "UNKNOWN_EXCEPTION", "compress: "+err.Error())
		}
		buf = append(buf, cw.Data...)
		out = out[n:]
	}
	return buf, nil
}

// ignoreClientGone: once headers are out, a write error means the client
// left; there is nobody to tell.
func ignoreClientGone(err error) error { return nil }

// prefixReader lets the handler look at the start of a body and then read
// the whole of it.
type prefixReader struct {
	r   io.Reader
	buf []byte
}

// peek reads up to n bytes (fewer at EOF) and returns them as a string.
func (p *prefixReader) peek(n int) (string, error) {
	p.buf = make([]byte, n)
	m, err := io.ReadFull(p.r, p.buf)
	p.buf = p.buf[:m]
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", newException(codeCannotParseInput, "CANNOT_READ_ALL_DATA", "Cannot read the request body: "+err.Error())
	}
	return string(p.buf), nil
}

// rest is what follows the peeked prefix.
func (p *prefixReader) rest() io.Reader { return p.r }
