package chserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Role is what a user may do. Every role is refused what touches the host
// (docs/security.md); the roles differ in the statements and
// settings they may use.
type Role string

const (
	// RoleReadonly may read (SELECT, WITH, SHOW, DESCRIBE, EXISTS,
	// EXPLAIN), set only harmless settings (output formats, progress
	// headers, ...) and lower, never raise, its limits: ClickHouse's
	// readonly=1, with a short allow-list of settings. Analysts and the
	// owner API.
	RoleReadonly Role = "readonly"
	// RoleWriter may also INSERT, CREATE TABLE / VIEW / MATERIALIZED VIEW
	// with storage engines of the MergeTree family, Memory, Null and Log,
	// ALTER TABLE and OPTIMIZE: what the sink and the migrations need.
	RoleWriter Role = "writer"
	// RoleAdmin may also DROP, TRUNCATE, RENAME and EXCHANGE tables and
	// DELETE FROM them (an
	// operator's maintenance, the tests' clean-ups).
	RoleAdmin Role = "admin"
)

func (r Role) valid() bool { return r == RoleReadonly || r == RoleWriter || r == RoleAdmin }

// User is one account of the HTTP interface.
type User struct {
	Name string `json:"name"`
	// Password in clear (generated files hold it so that minecart run can
	// hand it to its own clients), or PasswordSHA256Hex, the hex SHA-256
	// of the password (as ClickHouse's users.xml password_sha256_hex).
	Password          string `json:"password,omitempty"`
	PasswordSHA256Hex string `json:"password_sha256_hex,omitempty"`
	Role              Role   `json:"role"`
	// MaxConcurrent bounds this user's requests queued or running at once
	// (0: 4 for readonly users, the whole queue for the others).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
}

// UsersFile is the JSON document of a users file.
type UsersFile struct {
	Users []User `json:"users"`
}

func (u User) validate() error {
	if !identRe.MatchString(u.Name) {
		return fmt.Errorf("user %q: the name must match %s", u.Name, identRe)
	}
	if !u.Role.valid() {
		return fmt.Errorf("user %s: role %q: want readonly, writer or admin", u.Name, u.Role)
	}
	switch {
	case u.Password != "" && u.PasswordSHA256Hex != "":
		return fmt.Errorf("user %s: password and password_sha256_hex are exclusive", u.Name)
	case u.Password == "" && u.PasswordSHA256Hex == "":
		return fmt.Errorf("user %s: a password is required", u.Name)
	case u.PasswordSHA256Hex != "":
		if b, err := hex.DecodeString(u.PasswordSHA256Hex); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("user %s: password_sha256_hex: want 64 hex digits", u.Name)
		}
	case len(u.Password) < 12:
		return fmt.Errorf("user %s: the password must be at least 12 characters", u.Name)
	}
	if u.MaxConcurrent < 0 {
		return fmt.Errorf("user %s: max_concurrent must not be negative", u.Name)
	}
	return nil
}

// ParseUser parses a NAME:PASSWORD:ROLE flag value.
func ParseUser(v string) (User, error) {
	name, rest, ok1 := strings.Cut(v, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok1 || i < 0 {
		return User{}, errors.New("want NAME:PASSWORD:ROLE (role readonly, writer or admin)")
	}
	u := User{Name: name, Password: rest[:i], Role: Role(rest[i+1:])}
	return u, u.validate()
}

// DSN is a clickhouse-go DSN for u at addr (host:port) over HTTP; u must
// hold its password in clear.
func (u User) DSN(addr, database string) string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(u.Name, u.Password), Host: addr, Path: "/" + database}).String()
}

// ReadUsersFile reads and validates a users file.
func ReadUsersFile(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	var f UsersFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if len(f.Users) == 0 {
		return nil, fmt.Errorf("users file %s: no users", path)
	}
	return f.Users, nil
}

// Generated user names of EnsureUsersFile.
const (
	UserAnalyst = "analyst" // readonly: for people
	UserReader  = "reader"  // readonly: for the owner API
	UserWriter  = "writer"  // writer: for the sink and the migrations
)

// EnsureUsersFile reads the users file at path, or, when there is none,
// creates it (mode 0600 in a directory made 0700) with three users and
// random 32-character passwords: analyst and reader (readonly) and writer.
// created tells which.
func EnsureUsersFile(path string) (users []User, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		users, err := ReadUsersFile(path)
		return users, false, err
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("users file: %w", err)
	}
	users = []User{
		{Name: UserAnalyst, Password: NewPassword(), Role: RoleReadonly},
		{Name: UserReader, Password: NewPassword(), Role: RoleReadonly},
		{Name: UserWriter, Password: NewPassword(), Role: RoleWriter},
	}
	return users, true, WriteUsersFile(path, users)
}

// WriteUsersFile writes users to path (0600; its directory is made 0700),
// atomically.
func WriteUsersFile(path string, users []User) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	b, err := json.MarshalIndent(UsersFile{Users: users}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".users-*.json")
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// NewPassword is 32 random characters of base64url (192 bits).
func NewPassword() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// FindUser returns the user named name.
func FindUser(users []User, name string) (User, bool) {
	for _, u := range users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// account is a user as the server keeps it.
type account struct {
	User
	hash [sha256.Size]byte
	sem  chan struct{}
}

func newAccounts(users []User, queue int) (map[string]*account, error) {
	if len(users) == 0 {
		return nil, errors.New("chserver: no users: the HTTP interface refuses to run without credentials")
	}
	m := make(map[string]*account, len(users))
	for _, u := range users {
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("chserver: %w", err)
		}
		if _, dup := m[u.Name]; dup {
			return nil, fmt.Errorf("chserver: user %s defined twice", u.Name)
		}
		a := &account{User: u}
		if u.Password != "" {
			a.hash = sha256.Sum256([]byte(u.Password))
		} else {
			hex.Decode(a.hash[:], []byte(u.PasswordSHA256Hex))
		}
		n := u.MaxConcurrent
		if n == 0 {
			n = queue
			if u.Role == RoleReadonly {
				n = 4
			}
		}
		a.sem = make(chan struct{}, n)
		m[u.Name] = a
	}
	return m, nil
}

// authenticate finds the request's user the ways ClickHouse's HTTP handler
// accepts credentials (authenticateUserByHTTP): the X-ClickHouse-User and
// X-ClickHouse-Key headers, or HTTP Basic authentication, or the user and
// password URL parameters; mixing two ways is refused. No credentials at
// all is REQUIRED_PASSWORD (401); an unknown user or a wrong password is
// AUTHENTICATION_FAILED (403), with the same text for both.
func (s *server) authenticate(r *http.Request, params url.Values) (*account, error) {
	hUser, hKey := r.Header.Get("X-ClickHouse-User"), r.Header.Get("X-ClickHouse-Key")
	hasHeaders := hUser != "" || hKey != ""
	hasBasic := r.Header.Get("Authorization") != ""
	hasParams := params.Has("user") || params.Has("password")
	mixed := func(a, b string) error {
		return newException(codeAuthenticationFailed, "AUTHENTICATION_FAILED",
			"Invalid authentication: it is not allowed to use "+a+" and "+b+" simultaneously")
	}
	if strings.EqualFold(r.Header.Get("X-ClickHouse-SSL-Certificate-Auth"), "on") {
		return nil, newException(codeAuthenticationFailed, "AUTHENTICATION_FAILED",
			"Invalid authentication: SSL certificate authentication is not supported by this server")
	}
	var name, pass string
	switch {
	case hasHeaders:
		if hasBasic {
			return nil, mixed("X-ClickHouse HTTP headers", "Authorization HTTP header")
		}
		if hasParams {
			return nil, mixed("X-ClickHouse HTTP headers", "authentication via parameters")
		}
		name, pass = hUser, hKey
	case hasBasic:
		if hasParams {
			return nil, mixed("Authorization HTTP header", "authentication via parameters")
		}
		u, p, ok := r.BasicAuth()
		if !ok {
			return nil, newException(codeAuthenticationFailed, "AUTHENTICATION_FAILED",
				"Invalid authentication: only the 'Basic' HTTP Authorization scheme is supported")
		}
		name, pass = u, p
	case hasParams:
		name, pass = params.Get("user"), params.Get("password")
	default:
		return nil, newException(codeRequiredPassword, "REQUIRED_PASSWORD",
			"Authentication required: send a user and password (X-ClickHouse-User and X-ClickHouse-Key headers, HTTP Basic authentication, or the user and password parameters)")
	}
	if name == "" {
		name = "default"
	}
	a := s.users[name]
	h := sha256.Sum256([]byte(pass))
	var want [sha256.Size]byte
	if a != nil {
		want = a.hash
	}
	// Compare whether or not the user exists: the same work either way.
	if subtle.ConstantTimeCompare(h[:], want[:]) != 1 || a == nil {
		return nil, newException(codeAuthenticationFailed, "AUTHENTICATION_FAILED",
			name+": Authentication failed: password is incorrect, or there is no user with such name")
	}
	return a, nil
}

// browserRequest reports why r looks like a request sent by a web page
// (which must never reach the engine: a page the operator visits could
// otherwise drive it with the operator's network position), or "".
func browserRequest(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return "requests with an Origin header (sent by web browsers) are refused"
	}
	switch site := strings.ToLower(r.Header.Get("Sec-Fetch-Site")); site {
	case "", "none":
	default:
		return "requests with Sec-Fetch-Site: " + site + " (sent by web browsers) are refused"
	}
	if r.Header.Get("Sec-Fetch-Mode") != "" && r.Header.Get("Sec-Fetch-Site") == "" {
		return "requests with Sec-Fetch-Mode (sent by web browsers) are refused"
	}
	return ""
}

// UsersFromFlags is the users of `minecart clickhouse` and chserver:
// those given as flags (NAME:PASSWORD:ROLE), then those of the users file
// at path if it exists. With no flag users and no file, the file is
// created by EnsureUsersFile (created is then true).
func UsersFromFlags(flagUsers []User, path string) (users []User, created bool, err error) {
	users = append(users, flagUsers...)
	if _, err := os.Stat(path); err == nil || len(flagUsers) == 0 {
		fileUsers, made, err := EnsureUsersFile(path)
		if err != nil {
			return nil, false, err
		}
		users, created = append(users, fileUsers...), made
	}
	return users, created, nil
}
