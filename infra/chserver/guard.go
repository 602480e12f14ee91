package chserver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Limits are the ceilings of a readonly user's queries: applied to every
// one of its requests, and lowered (never raised) by the settings it sends.
type Limits struct {
	MaxExecutionTime int   // seconds (max_execution_time); default 60
	MaxResultRows    int64 // max_result_rows; default 10,000,000
	MaxResultBytes   int64 // max_result_bytes; default 1 GiB
	MaxMemoryUsage   int64 // max_memory_usage (bytes); default 2 GiB
}

func (l *Limits) defaults() {
	if l.MaxExecutionTime <= 0 {
		l.MaxExecutionTime = 60
	}
	if l.MaxResultRows <= 0 {
		l.MaxResultRows = 10_000_000
	}
	if l.MaxResultBytes <= 0 {
		l.MaxResultBytes = 1 << 30
	}
	if l.MaxMemoryUsage <= 0 {
		l.MaxMemoryUsage = 2 << 30
	}
}

// caps are the limit settings by name.
func (l Limits) caps() map[string]int64 {
	return map[string]int64{
		"max_execution_time": int64(l.MaxExecutionTime),
		"max_result_rows":    l.MaxResultRows,
		"max_result_bytes":   l.MaxResultBytes,
		"max_memory_usage":   l.MaxMemoryUsage,
	}
}

// allowedTableFunctions may be called by every user: they compute rows or
// read tables, never the host. Every other table function the engine knows
// (system.table_functions: file, url, s3, hdfs, remote, mysql, executable,
// input, ...) is refused, whatever its name's case or quoting.
var allowedTableFunctions = set("numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom",
	"generateseries", "generate_series", "values", "null", "view", "merge", "format", "primes")

// allowedEngines are the storage engines a writer may create tables with.
var allowedEngines = set("mergetree", "replacingmergetree", "summingmergetree", "aggregatingmergetree",
	"collapsingmergetree", "versionedcollapsingmergetree", "coalescingmergetree", "graphitemergetree",
	"memory", "null", "log", "tinylog", "stripelog", "materializedview", "view", "set", "join", "buffer")

// deniedFunctions are ordinary functions that reach the host: file() reads
// any file in chDB's local mode, disk() defines a disk at any path (table
// SETTINGS disk = disk(type=local, path=...)), catboostEvaluate loads a
// model file. Table functions and engines other than the allowed ones are
// added from the engine's own lists when the server starts.
var deniedFunctions = set("file", "disk", "catboostevaluate", "modelevaluate", "executable",
	"executablepool", "input", "url", "s3", "hdfs", "remote", "remotesecure", "cluster",
	"clusterallreplicas", "mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc", "odbc",
	"azureblobstorage", "gcs", "oss", "cosn", "filesystem", "dictionary", "loop", "fuzzjson", "fuzzquery",
	"kafka", "s3queue", "filelog", "filecluster", "urlcluster", "s3cluster", "hdfscluster")

// deniedWords may not appear as bare words anywhere in a statement:
// INTO OUTFILE and FROM INFILE name host files; EXECUTE AS changes user.
var deniedWords = set("outfile", "infile", "execute")

// Statements by first keyword and the role they need.
var statementRoles = map[string]Role{
	"SELECT": RoleReadonly, "WITH": RoleReadonly, "SHOW": RoleReadonly, "DESCRIBE": RoleReadonly,
	"DESC": RoleReadonly, "EXISTS": RoleReadonly, "EXPLAIN": RoleReadonly, "SET": RoleReadonly,
	"USE":    RoleReadonly,
	"INSERT": RoleWriter, "CREATE": RoleWriter, "ALTER": RoleWriter, "OPTIMIZE": RoleWriter,
	"DROP": RoleAdmin, "TRUNCATE": RoleAdmin, "RENAME": RoleAdmin, "EXCHANGE": RoleAdmin, "DELETE": RoleAdmin,
}

// What CREATE, DROP, ... may act on.
var objectWords = map[string][][]string{
	"CREATE":   {{"TABLE"}, {"VIEW"}, {"MATERIALIZED", "VIEW"}, {"OR", "REPLACE", "VIEW"}, {"OR", "REPLACE", "TABLE"}, {"TEMPORARY", "TABLE"}},
	"ALTER":    {{"TABLE"}},
	"OPTIMIZE": {{"TABLE"}},
	"DROP":     {{"TABLE"}, {"VIEW"}, {"TEMPORARY", "TABLE"}},
	"TRUNCATE": {{"TABLE"}, {"TEMPORARY", "TABLE"}, {}},
	"RENAME":   {{"TABLE"}},
	"EXCHANGE": {{"TABLES"}},
	"DELETE":   {{"FROM"}},
}

// Words refused inside ALTER: they copy parts out of the data directory or
// fetch them from elsewhere.
var deniedAlterWords = set("freeze", "unfreeze", "fetch", "disk", "volume")

// Settings a readonly user may set (in the URL, SET or a SETTINGS clause),
// besides the limits (lowered only) and the prefixed families below.
var readonlySettings = set("max_threads", "max_block_size", "extremes", "join_use_nulls", "limit", "offset",
	"session_timezone", "log_comment", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
	"http_wait_end_of_query", "http_response_buffer_size", "http_write_exception_in_output_format",
	"enable_analyzer", "allow_experimental_analyzer", "result_overflow_mode", "timeout_overflow_mode",
	"final", "prefer_column_name_to_alias", "aggregate_functions_null_for_empty", "transform_null_in",
	"cast_keep_nullable", "count_distinct_implementation", "joined_subquery_requires_alias",
	"mutations_sync", "optimize_read_in_order",
	"use_uncompressed_cache", "select_sequential_consistency", "query_plan_optimize_lazy_materialization",
	"max_rows_to_read", "max_bytes_to_read", "readonly", "output_format_json_quote_64bit_integers",
	"allow_experimental_dynamic_type", "allow_experimental_json_type", "allow_experimental_variant_type",
	"network_compression_method", "network_zstd_compression_level", "http_zlib_compression_level",
	"cancel_http_readonly_queries_on_client_close")

// ... and the families of format settings (output_format_*, input_format_*,
// format_*, date_time_*), except names holding one of settingDeniedParts.
var settingFamilies = []string{"output_format_", "input_format_", "format_", "date_time_"}

// Setting names holding one of these are refused to everyone: they name
// files, paths, URLs or hosts (format_schema, format_template_row,
// output_format_schema, input_format_record_errors_file_path,
// format_avro_schema_registry_url, ...), reveal secrets, or spill to disk.
var settingDeniedParts = []string{"schema", "path", "file", "template", "url", "dir", "host", "script",
	"command", "disk", "storage", "secret", "password", "user", "registry", "external", "cache", "log_queries",
	"introspection", "shell", "allow_ddl"}

// Settings a writer or admin may also set: inserts and the table settings
// of the migrations.
var writerSettings = set("async_insert", "wait_for_async_insert", "wait_for_async_insert_timeout",
	"async_insert_max_data_size", "async_insert_busy_timeout_ms", "insert_deduplicate",
	"insert_deduplication_token", "max_insert_block_size", "min_insert_block_size_rows",
	"min_insert_block_size_bytes", "max_partitions_per_insert_block", "throw_on_max_partitions_per_insert_block",
	"alter_sync", "materialize_ttl_after_modify", "max_execution_time", "max_memory_usage",
	"max_result_rows", "max_result_bytes", "index_granularity", "index_granularity_bytes",
	"min_bytes_for_wide_part", "min_rows_for_wide_part", "ttl_only_drop_parts", "merge_with_ttl_timeout",
	"allow_nullable_key", "deduplicate_merge_projection_mode", "lightweight_mutation_projection_mode",
	"enable_block_number_column", "enable_block_offset_column", "optimize_throw_if_noop",
	"insert_null_as_default", "input_format_values_interpret_expressions")

// policy is the server's checker, built once from the engine's own lists.
type policy struct {
	denied   map[string]bool // lower-cased call names refused to everyone
	settings map[string]bool // the engine's settings and MergeTree settings
	limits   Limits
}

func newPolicy(tableFunctions, engines, settings []string, limits Limits) *policy {
	p := &policy{denied: map[string]bool{}, settings: set(settings...), limits: limits}
	for k := range deniedFunctions {
		p.denied[k] = true
	}
	for _, n := range tableFunctions {
		if n = strings.ToLower(n); !allowedTableFunctions[n] {
			p.denied[n] = true
		}
	}
	for _, n := range engines {
		if n = strings.ToLower(n); !allowedEngines[n] && !allowedTableFunctions[n] {
			p.denied[n] = true
		}
	}
	return p
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func accessDenied(format string, args ...any) *Exception {
	return newException(codeAccessDenied, "ACCESS_DENIED", fmt.Sprintf(format, args...))
}

func refusedSyntax(err error) *Exception {
	if le, ok := err.(*lexError); ok {
		return newException(codeSyntaxError, "SYNTAX_ERROR",
			fmt.Sprintf("Refused by the server's statement check at position %d: %s", le.pos+1, le.msg))
	}
	return newException(codeSyntaxError, "SYNTAX_ERROR", err.Error())
}

// roleRank orders the roles.
func roleRank(r Role) int {
	switch r {
	case RoleReadonly:
		return 1
	case RoleWriter:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// checkStatement decides whether user u may run sql. It refuses, for every
// role, calls of host-touching table functions, engines and functions,
// INTO OUTFILE / FROM INFILE / EXECUTE AS, and settings outside the role's
// allow-list (in SET and in SETTINGS clauses); and, by role, statements
// beyond the role. infileAt, if not -1, is the byte offset of the one
// INFILE word allowed: the server's own FROM INFILE of spooled insert data
// (it must be there as a word, not swallowed by a comment of the user's).
func (p *policy) checkStatement(u *account, sql string, infileAt int) error {
	toks, err := lex(sql)
	if err != nil {
		return refusedSyntax(err)
	}
	for j, t := range toks {
		if t.kind == tokPunct && t.text == ";" && j+1 < len(toks) {
			return newException(codeSyntaxError, "SYNTAX_ERROR", "Multi-statements are not allowed")
		}
		// {name:Identifier} placeholders would let a parameter name the
		// function called: a placeholder may not be called.
		if t.kind == tokPunct && t.text == "}" && j+1 < len(toks) && toks[j+1].text == "(" {
			return accessDenied("%s: a query parameter cannot name a function", u.Name)
		}
	}
	if infileAt >= 0 {
		found := false
		for _, t := range toks {
			found = found || t.pos == infileAt && t.kind == tokWord && strings.EqualFold(t.text, "INFILE")
		}
		if !found {
			return newException(codeSyntaxError, "SYNTAX_ERROR", "Malformed INSERT statement")
		}
	}
	i := 0
	for i < len(toks) && toks[i].text == "(" {
		i++
	}
	if i == len(toks) {
		return nil // empty: the engine answers
	}
	if toks[i].kind != tokWord {
		return accessDenied("%s: statements must start with a keyword", u.Name)
	}
	first := strings.ToUpper(toks[i].text)
	need, ok := statementRoles[first]
	if !ok {
		return newException(codeSyntaxError, "SYNTAX_ERROR", fmt.Sprintf(
			"Syntax error: %s statements are unknown or not allowed on this server (allowed: SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN, SET, USE; writers: INSERT, CREATE, ALTER, OPTIMIZE; admins: DROP, TRUNCATE, RENAME, EXCHANGE, DELETE)", first))
	}
	if roleRank(u.Role) < roleRank(need) {
		if u.Role == RoleReadonly {
			return newException(codeReadonly, "READONLY", fmt.Sprintf("%s: Cannot execute %s in readonly mode: user %s is read-only", u.Name, first, u.Name))
		}
		return accessDenied("%s: Not enough privileges: %s needs the %s role", u.Name, first, need)
	}
	if objs, ok := objectWords[first]; ok && !matchObject(toks[i+1:], objs) {
		return accessDenied("%s: %s of that kind of object is not allowed on this server", u.Name, first)
	}
	for j, t := range toks {
		word := t.kind == tokWord || t.kind == tokQIdent
		if !word {
			continue
		}
		low := strings.ToLower(t.text)
		if t.kind == tokWord && deniedWords[low] && !(low == "infile" && t.pos == infileAt) {
			return accessDenied("%s: %s is not allowed on this server", u.Name, strings.ToUpper(t.text))
		}
		if first == "ALTER" && t.kind == tokWord && deniedAlterWords[low] {
			return accessDenied("%s: ALTER ... %s is not allowed on this server", u.Name, strings.ToUpper(t.text))
		}
		next := ""
		if j+1 < len(toks) && toks[j+1].kind == tokPunct {
			next = toks[j+1].text
		}
		if next == "(" && p.denied[low] {
			return accessDenied("%s: %s() reaches outside the database and is not allowed on this server", u.Name, t.text)
		}
		if t.kind == tokWord && strings.EqualFold(t.text, "ENGINE") {
			k := j + 1
			if k < len(toks) && toks[k].text == "=" {
				k++
			}
			if k < len(toks) && (toks[k].kind != tokWord && toks[k].kind != tokQIdent || !allowedEngines[strings.ToLower(toks[k].text)]) {
				return accessDenied("%s: ENGINE = %s is not allowed on this server", u.Name, toks[k].text)
			}
		}
		// A SETTINGS (or ALTER's SETTING) keyword starts a list of
		// assignments, unless it is a name after a dot (system.settings).
		// A column named settings must be quoted to be used unchecked.
		if t.kind == tokWord && (strings.EqualFold(t.text, "SETTINGS") || strings.EqualFold(t.text, "SETTING")) &&
			!(j > 0 && toks[j-1].text == ".") || j == i && first == "SET" {
			if err := p.checkAssignments(u, toks[j+1:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func matchObject(toks []token, objs [][]string) bool {
	for _, o := range objs {
		if len(o) == 0 {
			if len(toks) == 0 || toks[0].kind != tokWord || !strings.EqualFold(toks[0].text, "TEMPORARY") && !strings.EqualFold(toks[0].text, "DATABASE") && !strings.EqualFold(toks[0].text, "TABLE") {
				return true // TRUNCATE t
			}
			continue
		}
		if len(toks) < len(o) {
			continue
		}
		ok := true
		for k, w := range o {
			if toks[k].kind != tokWord || !strings.EqualFold(toks[k].text, w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// checkAssignments checks the list "name [= value] [, name [= value]]..."
// that follows SET, SETTINGS or SETTING. Every name of the list is checked,
// with or without a value (ClickHouse reads "SET flag" as flag = 1).
func (p *policy) checkAssignments(u *account, toks []token) error {
	k := 0
	for k < len(toks) {
		t := toks[k]
		if t.kind == tokPunct && t.text == "{" {
			return accessDenied("%s: a query parameter cannot name a setting", u.Name)
		}
		if t.kind != tokWord && t.kind != tokQIdent {
			return nil
		}
		name := t.text
		k++
		if k < len(toks) && toks[k].text == "." {
			return accessDenied("%s: compound setting names are not allowed on this server", u.Name)
		}
		value, hasValue := "", false
		if k < len(toks) && toks[k].text == "=" {
			k++
			hasValue = true
			start := k
			depth := 0
			for k < len(toks) {
				tt := toks[k].text
				if toks[k].kind == tokPunct {
					if tt == "(" || tt == "[" || tt == "{" {
						depth++
					} else if tt == ")" || tt == "]" || tt == "}" {
						if depth == 0 {
							break
						}
						depth--
					} else if tt == "," && depth == 0 {
						break
					}
				}
				if depth == 0 && k > start && toks[k].kind == tokWord {
					break // the next clause (FORMAT, ...)
				}
				k++
			}
			if k == start+1 && (toks[start].kind == tokNumber || toks[start].kind == tokString) {
				value = toks[start].text
			} else if k == start+2 && toks[start].text == "-" && toks[start+1].kind == tokNumber {
				value = "-" + toks[start+1].text
			} else {
				value = "\x00expr" // not a plain literal
			}
		}
		if err := p.checkSetting(u, name, value, hasValue); err != nil {
			return err
		}
		if k < len(toks) && toks[k].text == "," {
			k++
			continue
		}
		return nil
	}
	return nil
}

// checkSetting decides whether u may set name to value (hasValue false:
// "SET name", which means 1).
func (p *policy) checkSetting(u *account, name, value string, hasValue bool) error {
	if !hasValue {
		value = "1"
	}
	low := strings.ToLower(name)
	for _, part := range settingDeniedParts {
		if strings.Contains(low, part) {
			return accessDenied("%s: Setting %s is not allowed on this server", u.Name, name)
		}
	}
	if strings.HasPrefix(low, "param_") {
		return accessDenied("%s: query parameters go in the URL (param_NAME=value), not in SET or SETTINGS", u.Name)
	}
	if name == "readonly" {
		if value == "1" || value == "2" && u.Role != RoleReadonly {
			return nil
		}
		return newException(codeReadonly, "READONLY", fmt.Sprintf("%s: Cannot modify 'readonly' setting in readonly mode", u.Name))
	}
	if u.Role == RoleReadonly {
		if c, ok := p.limits.caps()[name]; ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || !(n > 0 && n <= float64(c)) { // NaN fails too
				return newException(codeReadonly, "READONLY", fmt.Sprintf(
					"%s: Setting %s may only be lowered, to a number in (0, %d], for a readonly user", u.Name, name, c))
			}
			return nil
		}
	}
	if readonlySettings[name] || u.Role != RoleReadonly && writerSettings[name] {
		return nil
	}
	for _, f := range settingFamilies {
		if strings.HasPrefix(name, f) {
			return nil
		}
	}
	if p.settings != nil && !p.settings[name] {
		return newException(codeUnknownSetting, "UNKNOWN_SETTING", fmt.Sprintf("Unknown setting '%s'", name))
	}
	if u.Role == RoleReadonly {
		return newException(codeReadonly, "READONLY", fmt.Sprintf("%s: Cannot modify '%s' setting in readonly mode", u.Name, name))
	}
	return accessDenied("%s: Setting %s is not allowed on this server", u.Name, name)
}

// sortedKeys is m's keys in order (deterministic SET statements).
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// placeholders are the names of the query parameters sql uses
// ({name:Type}). The engine's session keeps parameters between requests
// (a parameter cannot be unset, only set to another value), so a
// placeholder without its parameter in the request is refused here, as a
// server refuses it, rather than bound to a leftover value.
func placeholders(sql string) []string {
	toks, err := lex(sql)
	if err != nil {
		return nil
	}
	var names []string
	for j := 0; j+2 < len(toks); j++ {
		if toks[j].text == "{" && toks[j].kind == tokPunct && toks[j+1].kind == tokWord && toks[j+2].text == ":" {
			names = append(names, toks[j+1].text)
		}
	}
	return names
}
