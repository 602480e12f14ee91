package chserver

import (
	"regexp"
	"strconv"
	"strings"
)

// Exception is a ClickHouse error: its code and the server's text,
// "Code: 62. DB::Exception: Syntax error: ... (SYNTAX_ERROR)".
type Exception struct {
	Code int
	Text string
}

func (e *Exception) Error() string { return e.Text }

var codeRe = regexp.MustCompile(`Code:\s*(\d+)\.`)

// parseEngineError turns chDB's error text into an Exception. chDB's text is
// a server's text, sometimes with a prefix or trailing newlines.
func parseEngineError(msg string) *Exception {
	msg = strings.TrimSpace(msg)
	if loc := codeRe.FindStringSubmatchIndex(msg); loc != nil {
		code, _ := strconv.Atoi(msg[loc[2]:loc[3]])
		return &Exception{Code: code, Text: msg[loc[0]:]}
	}
	return &Exception{Code: codeUnknownException, Text: "Code: 1002. DB::Exception: " + msg + " (UNKNOWN_EXCEPTION)"}
}

// newException formats an error raised by the HTTP layer itself the way the
// server does.
func newException(code int, name, msg string) *Exception {
	return &Exception{Code: code, Text: "Code: " + strconv.Itoa(code) + ". DB::Exception: " + msg + ". (" + name + ")"}
}

// ClickHouse error codes used here (src/Common/ErrorCodes.cpp).
const (
	codeBadArguments            = 36
	codeCannotParseText         = 6
	codeCannotParseEscape       = 25
	codeCannotParseQuoted       = 26
	codeCannotParseAssertion    = 27
	codeCannotParseDate         = 38
	codeCannotParseDateTime     = 41
	codeUnknownFunction         = 46
	codeUnknownIdentifier       = 47
	codeNotImplemented          = 48
	codeUnknownType             = 50
	codeTypeMismatch            = 53
	codeUnknownStorage          = 56
	codeUnknownTypeOfQuery      = 57
	codeUnknownTable            = 60
	codeSyntaxError             = 62
	codeUnknownAggregate        = 63
	codeCannotParseNumber       = 72
	codeUnknownFormat           = 73
	codeUnknownDatabase         = 81
	codeUnknownSetting          = 115
	codeIncorrectData           = 117
	codeUnknownDirection        = 119
	codeReadonly                = 164
	codeTooDeepAST              = 167
	codeTooBigAST               = 168
	codeUnexpectedAST           = 223
	codeValueOutOfRange         = 321
	codeUnknownDatabaseEngine   = 336
	codeCannotParseUUID         = 376
	codeQueryWasCancelled       = 394
	codeAccessDenied            = 497
	codeUnknownRole             = 511
	codeAuthenticationFailed    = 516
	codeUnknownException        = 1002
	codeHTTPLengthRequired      = 381
	codeCannotParseInput        = codeCannotParseText
	codeUnknownUser             = 192
	codeWrongPassword           = 193
	codeRequiredPassword        = 194
	codeUnexpectedEndOfFile     = 32
	codeIncorrectQuery          = 80
	codeTimeoutExceeded         = 159
	codeTooManySimultaneousReqs = 202
	codeBadQueryParameter       = 457
	codeUnknownQueryParameter   = 456
)

// httpStatus maps an exception code to the HTTP status ClickHouse's HTTP
// handler answers with (exceptionCodeToHTTPStatus in HTTPHandler.cpp).
func httpStatus(code int) int {
	switch code {
	case codeRequiredPassword:
		return 401
	case codeUnknownUser, codeWrongPassword, codeAuthenticationFailed, codeAccessDenied:
		return 403
	case codeReadonly:
		// A server answers READONLY with 500; 403 says better that the
		// request is refused, not failed, and no client depends on it.
		return 403
	case codeCannotParseText, codeCannotParseEscape, codeCannotParseQuoted, codeCannotParseAssertion,
		codeCannotParseDate, codeCannotParseDateTime, codeCannotParseNumber, codeCannotParseUUID,
		codeTooDeepAST, codeTooBigAST, codeUnexpectedAST, codeSyntaxError, codeIncorrectData,
		codeTypeMismatch, codeValueOutOfRange, codeBadArguments:
		return 400
	case codeUnknownTable, codeUnknownFunction, codeUnknownIdentifier, codeUnknownType,
		codeUnknownStorage, codeUnknownDatabase, codeUnknownSetting, codeUnknownDirection,
		codeUnknownAggregate, codeUnknownFormat, codeUnknownDatabaseEngine, codeUnknownTypeOfQuery,
		codeUnknownRole:
		return 404
	case codeHTTPLengthRequired:
		return 411
	case codeNotImplemented:
		return 501
	case codeTooManySimultaneousReqs:
		return 503
	case codeTimeoutExceeded:
		return 408
	case codeBadQueryParameter, codeUnknownQueryParameter:
		// A server answers 500; a parameter that is not of its
		// placeholder's type is the client's error.
		return 400
	}
	return 500
}
