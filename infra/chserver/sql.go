package chserver

import (
	"regexp"
	"strings"
)

// stmtKind is what the HTTP layer needs to know about a statement.
type stmtKind int

const (
	stmtRead   stmtKind = iota // SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN
	stmtInsert                 // INSERT
	stmtWrite                  // DDL, OPTIMIZE, SYSTEM, ...: refused in readonly mode
	stmtOther                  // anything else (left to the engine to judge)
)

// skipSpaceAndComments drops leading white space, -- and /* */ comments.
func skipSpaceAndComments(s string) string {
	for {
		t := strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(t, "--") || strings.HasPrefix(t, "#"):
			i := strings.IndexByte(t, '\n')
			if i < 0 {
				return ""
			}
			s = t[i+1:]
		case strings.HasPrefix(t, "/*"):
			i := strings.Index(t, "*/")
			if i < 0 {
				return ""
			}
			s = t[i+2:]
		default:
			return t
		}
	}
}

// firstWord is the statement's leading keyword, upper-cased.
func firstWord(sql string) string {
	s := skipSpaceAndComments(sql)
	i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if i < 0 {
		i = len(s)
	}
	return strings.ToUpper(s[:i])
}

func kindOf(sql string) stmtKind {
	switch firstWord(sql) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN":
		return stmtRead
	case "INSERT":
		return stmtInsert
	case "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "OPTIMIZE", "SYSTEM", "DELETE", "UPDATE",
		"ATTACH", "DETACH", "GRANT", "REVOKE", "KILL", "EXCHANGE", "UNDROP", "BACKUP", "RESTORE",
		"MOVE", "SET", "USE", "REPLACE":
		return stmtWrite
	}
	return stmtOther
}

// insertFormatRe matches the head of "INSERT INTO t [(cols)] [SETTINGS ...]
// FORMAT Name" up to the format name; what follows (after one separator) is
// inline data.
var insertFormatRe = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+([A-Za-z0-9_]+)`)

// insertValuesRe matches "INSERT INTO t [(cols)] VALUES" with the values after it.
var insertValuesRe = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+(.+?)\s+VALUES\b`)

var ownSourceRe = regexp.MustCompile(`(?i)\bFROM\s+INFILE\b|\bSELECT\b|\bWITH\b`)

var settingsClauseRe = regexp.MustCompile(`(?is)\s+SETTINGS\s+`)

// insertHead is a parsed INSERT whose data comes after the statement.
type insertHead struct {
	target   string // "t (a, b)"
	settings string // "k = v, ..." or ""
	format   string
	inline   string // data after the FORMAT name / VALUES keyword
}

// parseInsert splits an INSERT statement that carries its data in the
// request (FORMAT or VALUES) into head and inline data. ok is false for
// INSERT ... SELECT and other forms that carry no data.
func parseInsert(sql string) (insertHead, bool) {
	var h insertHead
	if m := insertFormatRe.FindStringSubmatchIndex(sql); m != nil {
		h.target = sql[m[2]:m[3]]
		h.format = sql[m[4]:m[5]]
		rest := sql[m[1]:]
		// One white-space character (usually a newline) separates the
		// statement from its data, as in ClickHouse's parser.
		if len(rest) > 0 && strings.ContainsRune(" \t\r\n", rune(rest[0])) {
			rest = rest[1:]
			if strings.HasPrefix(rest, "\n") && strings.HasSuffix(sql[:m[1]+1], "\r") {
				rest = rest[1:]
			}
		}
		h.inline = rest
	} else if m := insertValuesRe.FindStringSubmatchIndex(sql); m != nil {
		h.target = sql[m[2]:m[3]]
		h.format = "Values"
		h.inline = sql[m[1]:]
	} else {
		return h, false
	}
	if ownSourceRe.MatchString(h.target) {
		return h, false // INSERT ... SELECT / FROM INFILE: the statement names its data
	}
	if loc := settingsClauseRe.FindStringIndex(h.target); loc != nil {
		h.settings = strings.TrimSpace(h.target[loc[1]:])
		h.target = strings.TrimSpace(h.target[:loc[0]])
	}
	return h, true
}

// infileSQL is the INSERT that loads path.
func (h insertHead) infileSQL(path string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(h.target)
	b.WriteString(" FROM INFILE ")
	b.WriteString(quoteString(path))
	if h.settings != "" {
		b.WriteString(" SETTINGS ")
		b.WriteString(h.settings)
	}
	b.WriteString(" FORMAT ")
	b.WriteString(h.format)
	return b.String()
}

// infileAt is the byte offset of INFILE in infileSQL's statement.
func (h insertHead) infileAt() int { return len("INSERT INTO ") + len(h.target) + len(" FROM ") }

// outputFormatRe finds a trailing FORMAT clause.
var outputFormatRe = regexp.MustCompile(`(?is)\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$`)

// explicitFormat is the format named by a trailing FORMAT clause, or "".
func explicitFormat(sql string) string {
	if m := outputFormatRe.FindStringSubmatch(sql); m != nil {
		return m[1]
	}
	return ""
}

// quoteString is s as a ClickHouse string literal.
func quoteString(s string) string {
	// NUL is escaped: the engine's C API would end the statement there.
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}

// settingLiteral is v as the right-hand side of SET: a plain decimal
// number stays bare, anything else becomes a string literal (ClickHouse
// converts it to the setting's type).
func settingLiteral(v string) string {
	if plainNumberRe.MatchString(v) {
		return v
	}
	return quoteString(v)
}

var plainNumberRe = regexp.MustCompile(`^-?[0-9]{1,30}(\.[0-9]{1,30})?$`)

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// multiStatement reports whether sql holds more than one statement: a ';'
// outside string literals, quoted identifiers and comments, followed by
// anything but white space and comments. ClickHouse's HTTP interface runs
// one statement per request; chDB would run them all, which would let
// "SELECT 1; DROP TABLE t" past the read-only check of GET requests.
func multiStatement(sql string) bool {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; c {
		case '\'', '"', '`':
			i = skipQuoted(sql, i, c)
		case '-':
			if i+1 < len(sql) && sql[i+1] == '-' {
				i = skipLine(sql, i)
			}
		case '#':
			i = skipLine(sql, i)
		case '/':
			if i+1 < len(sql) && sql[i+1] == '*' {
				end := strings.Index(sql[i+2:], "*/")
				if end < 0 {
					return false
				}
				i += 2 + end + 1
			}
		case ';':
			rest := sql[i+1:]
			for {
				t := strings.TrimLeft(skipSpaceAndComments(rest), ";")
				if t == rest {
					return t != ""
				}
				rest = t
			}
		}
	}
	return false
}

// skipQuoted returns the index of the quote closing the literal opened at i
// (backslash escapes and doubled quotes), or len(s)-1.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return len(s) - 1
}

func skipLine(s string, i int) int {
	if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
		return i + n
	}
	return len(s) - 1
}
