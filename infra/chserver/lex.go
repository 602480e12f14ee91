package chserver

import (
	"regexp"
	"strings"
)

// The server checks every statement before the engine sees it
// (guard.go). The check works on tokens, never on the raw text, so that
// comments, quoting and spacing cannot hide a name: this lexer follows
// ClickHouse's (src/Parsers/Lexer.cpp) for everything a statement of
// minecart's users can hold, and refuses what it does not model exactly
// (heredocs, '$', bytes outside ASCII outside literals, unusual numbers,
// nested or unterminated comments and literals) rather than guess.

type tokKind int

const (
	tokWord   tokKind = iota // bare word: keyword or identifier
	tokQIdent                // `quoted` or "quoted" identifier (text unescaped)
	tokString                // 'string literal' (text unescaped)
	tokNumber                // numeric literal
	tokPunct                 // one punctuation character or operator
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// lexError is a statement the lexer refuses.
type lexError struct {
	pos int
	msg string
}

func (e *lexError) Error() string { return e.msg }

var numberRe = regexp.MustCompile(`^(0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9_]+)?|\.[0-9][0-9_]*([eE][+-]?[0-9_]+)?)$`)

func isWordStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isWordChar(c byte) bool  { return isWordStart(c) || c >= '0' && c <= '9' }
func isDigit(c byte) bool     { return c >= '0' && c <= '9' }

// lex splits sql into tokens, dropping white space and comments.
func lex(sql string) ([]token, error) {
	// The engine's C API ends a statement at NUL: refuse it anywhere, so
	// that the engine never runs a prefix of what was checked.
	if i := strings.IndexByte(sql, 0); i >= 0 {
		return nil, &lexError{i, "NUL byte in the statement"}
	}
	var out []token
	s := sql
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-' || c == '/' && i+1 < len(s) && s[i+1] == '/':
			// "--" and "//" comment to the end of the line.
			i = lineEnd(s, i)
		case c == '#':
			// ClickHouse: "#!" or "# " start a comment; any other '#' is
			// an error there. Refuse the latter.
			if i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '!') {
				i = lineEnd(s, i)
			} else {
				return nil, &lexError{i, "unexpected '#'"}
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, &lexError{i, "unterminated comment"}
			}
			// ClickHouse nests /* */ comments; a nested opener is refused
			// so that both readings of the text agree.
			if strings.Contains(s[i+2:i+2+end], "/*") {
				return nil, &lexError{i, "nested comment"}
			}
			i += 2 + end + 2
		case c == '\'' || c == '"' || c == '`':
			text, next, err := unquote(s, i)
			if err != nil {
				return nil, err
			}
			k := tokQIdent
			if c == '\'' {
				k = tokString
			}
			out = append(out, token{k, text, i})
			i = next
		case isWordStart(c):
			j := i + 1
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			out = append(out, token{tokWord, s[i:j], i})
			i = j
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]) && !(len(out) > 0 && (out[len(out)-1].kind == tokWord || out[len(out)-1].kind == tokQIdent || out[len(out)-1].text == ")")):
			j := i + 1
			for j < len(s) && (isWordChar(s[j]) || s[j] == '.' ||
				(s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E') && !strings.HasPrefix(strings.ToLower(s[i:j]), "0x")) {
				j++
			}
			if !numberRe.MatchString(s[i:j]) {
				return nil, &lexError{i, "unrecognised number " + quoteString(s[i:j])}
			}
			out = append(out, token{tokNumber, s[i:j], i})
			i = j
		case c == '$':
			return nil, &lexError{i, "'$' (heredoc) is not supported by this server"}
		case c == '\\':
			// ClickHouse reads \G as the end of a query (Vertical format).
			return nil, &lexError{i, "'\\' outside a literal"}
		case c >= 0x80 || c < 0x20 || c == 0x7f:
			return nil, &lexError{i, "unexpected byte outside a literal"}
		default:
			// Operators of two characters are kept whole where it matters
			// to the checker ("=" must stay "=", not be part of "==").
			for _, op := range []string{"::", "->", "<=>", "<=", ">=", "!=", "<>", "==", "||"} {
				if strings.HasPrefix(s[i:], op) {
					out = append(out, token{tokPunct, op, i})
					i += len(op)
					goto next
				}
			}
			out = append(out, token{tokPunct, s[i : i+1], i})
			i++
		next:
		}
	}
	return out, nil
}

func lineEnd(s string, i int) int {
	if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(s)
}

// unquote reads the literal or quoted identifier opened at i: backslash
// escapes and doubled quotes, as ClickHouse's readQuoted... functions.
func unquote(s string, i int) (text string, next int, err error) {
	q := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '\\':
			if j+1 >= len(s) {
				return "", 0, &lexError{i, "unterminated literal"}
			}
			j++
			switch e := s[j]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte('\a')
			case 'v':
				b.WriteByte('\v')
			case 'e':
				b.WriteByte(0x1b)
			case 'x':
				if j+2 < len(s) && isHex(s[j+1]) && isHex(s[j+2]) {
					b.WriteByte(unhex(s[j+1])<<4 | unhex(s[j+2]))
					j += 2
				} else {
					b.WriteByte('x')
				}
			default:
				b.WriteByte(e)
			}
		case c == q:
			if j+1 < len(s) && s[j+1] == q {
				b.WriteByte(q)
				j++
				continue
			}
			return b.String(), j + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, &lexError{i, "unterminated literal"}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
