package turn

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error classes. Match them with errors.Is; use errors.As with *APIError for the details.
var (
	// ErrInvalidArgument: a value passed to the client is malformed; nothing was sent.
	ErrInvalidArgument = errors.New("turn: invalid argument")
	// ErrNoAPIToken: a key-management call was made without an API token; nothing was sent.
	ErrNoAPIToken = errors.New("turn: no API token: pass turn.WithAPIToken or set CLOUDFLARE_API_TOKEN")

	// ErrBadRequest: the API rejected the request as malformed (400, 422).
	ErrBadRequest = errors.New("turn: bad request")
	// ErrUnauthorized: the credential is missing or invalid (401).
	ErrUnauthorized = errors.New("turn: unauthorized")
	// ErrForbidden: the credential lacks permission (403): listing and getting keys need "Calls Read"
	// or "Calls Write", creating, renaming and deleting them "Calls Write". See APIError.Hint.
	ErrForbidden = errors.New("turn: forbidden")
	// ErrNotFound: the account or key does not exist (404).
	ErrNotFound = errors.New("turn: not found")
	// ErrRateLimited: too many requests (429); APIError.RetryAfter says when to come back.
	ErrRateLimited = errors.New("turn: rate limited")
	// ErrServer: Cloudflare's edge or origin failed (5xx).
	ErrServer = errors.New("turn: server error")
	// ErrUnexpectedResponse: the body is not what the API documents: an HTML page, an empty or
	// truncated body, a body over the size limit, or success:false with a 2xx status.
	ErrUnexpectedResponse = errors.New("turn: unexpected response")
)

// Message is one entry of the "errors" or "messages" list of a Cloudflare API envelope.
type Message struct {
	Code             int    `json:"code"`
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url,omitempty"`
	SourcePointer    string `json:"source_pointer,omitempty"`
}

// APIError is an HTTP response that was not a success. It keeps the status, every envelope error
// and message, and the cf-ray header whatever the body was. It never holds a credential: the path is
// the operation's template, not the URL, and the server's text (envelope messages, documentation
// URLs, source pointers, body excerpts) is cleaned: one printable line each, bounded, with the
// call's credentials removed.
type APIError struct {
	Operation  string        // what the client was doing, e.g. "create key"
	Method     string        // HTTP method
	Path       string        // path template, e.g. /accounts/{account_id}/calls/turn_keys
	StatusCode int           // HTTP status
	Errors     []Message     // envelope errors, in order
	Messages   []Message     // envelope messages, in order
	RayID      string        // cf-ray response header, for Cloudflare support
	RetryAfter time.Duration // from Retry-After, when the server sent one
	Excerpt    string        // a short, sanitised start of a body that was not the expected JSON
	Attempts   int           // how many attempts were made, retries included

	unexpected bool   // the body was not what the API documents
	reason     string // why the body was unexpected
}

// Error returns one stable, secret-free line, e.g.
//
//	turn: create key: 403 Forbidden: Authentication error (10000) [cf-ray 8f1e2d3c4b5a6978-SJC]
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("turn: ")
	b.WriteString(e.Operation)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteString(" ")
		b.WriteString(text)
	}
	for i, m := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%d)", m.Message, m.Code)
	}
	if e.unexpected {
		b.WriteString(": unexpected response: ")
		b.WriteString(e.reason)
	}
	if e.Excerpt != "" {
		fmt.Fprintf(&b, ": %q", e.Excerpt)
	}
	if e.RayID != "" {
		b.WriteString(" [cf-ray ")
		b.WriteString(e.RayID)
		b.WriteString("]")
	}
	return b.String()
}

// Hint says what to check after a 401 or 403, naming the permission the operation needs, or
// returns "" for other statuses. Cloudflare answers a mistyped token with 403 as well as a token
// that lacks the permission, so a 403's hint names both. It is not part of Error, whose text is stable.
func (e *APIError) Hint() string {
	ice := strings.HasPrefix(e.Path, "/turn/")
	keys := strings.HasPrefix(e.Path, "/accounts/{account_id}/calls/turn_keys")
	switch {
	case ice && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden):
		return "the TURN key's secret was refused: pass the 64-character key that CreateKey returned for this key ID (an API token does not work here); a deleted key's secret stops working"
	case e.StatusCode == http.StatusUnauthorized:
		return "the API token was refused: check that it is complete and has not expired or been revoked"
	case keys && e.StatusCode == http.StatusForbidden && e.Method == http.MethodGet:
		return `the API token is wrong, expired or revoked, or lacks permission: listing and getting TURN keys need "Calls Read" or "Calls Write" on this account`
	case keys && e.StatusCode == http.StatusForbidden:
		return `the API token is wrong, expired or revoked, or lacks permission: creating, renaming and deleting TURN keys need "Calls Write" on this account`
	case e.StatusCode == http.StatusForbidden:
		return "the API token is wrong, expired or revoked, or lacks a permission this endpoint needs"
	}
	return ""
}

// Is matches the class sentinels: the status class, and ErrUnexpectedResponse when the body was not
// what the API documents.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnexpectedResponse:
		return e.unexpected
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// callError is a failure found before any I/O, worded for one operation and matching a class.
type callError struct {
	msg   string
	class error
}

func (e *callError) Error() string        { return e.msg }
func (e *callError) Is(target error) bool { return target == e.class }

// invalidArg reports a malformed argument; it matches ErrInvalidArgument.
func invalidArg(op, format string, args ...any) error {
	return InvalidArgument(op, fmt.Sprintf(format, args...))
}

// InvalidArgument returns the error this package reports for a malformed argument found before any
// I/O: its text is "turn: OP: invalid argument: MSG" and it matches ErrInvalidArgument. Packages
// that build on the client (a server that validates its own configuration, say) use it so their
// callers can test every such error the same way. MSG must not hold a secret.
func InvalidArgument(op, msg string) error {
	return &callError{msg: "turn: " + op + ": invalid argument: " + msg, class: ErrInvalidArgument}
}

const (
	excerptLen    = 120            // characters of an unexpected body kept in APIError.Excerpt
	excerptWindow = 4 * excerptLen // bytes of the body read to make it
	messageLen    = 4 * excerptLen // characters kept of each envelope error or message
	minPartial    = 4              // shortest start of a known secret removed at a cut
	ellipsis      = "…"
)

// longToken matches runs that may be credentials or parts of them: a body can hold a credential
// scrub does not know.
var longToken = regexp.MustCompile(`[A-Za-z0-9_+/=.-]{24,}`)

// excerpt returns the start of a body as one printable line, with known secrets and anything that
// looks like one removed.
func excerpt(body []byte, secrets []Secret) string {
	cut := len(body) > excerptWindow
	if cut {
		body = body[:excerptWindow]
	}
	return longToken.ReplaceAllString(clean(string(body), secrets, excerptLen, cut), redacted)
}

// clean makes server-provided text safe to show: one line of printable characters, at most limit
// of them, without known secrets. The order matters. Control, zero-width and other invisible
// characters go first, so a secret broken up by them is whole again; secrets are redacted before
// the cut and again after it, when a secret's start left at the cut is removed with the rest of
// the word there. cut says the text was shortened already.
func clean(s string, secrets []Secret, limit int, cut bool) string {
	s = scrub(printable(s), secrets)
	if i := runeOffset(s, limit); i >= 0 {
		s, cut = s[:i], true
	}
	if !cut {
		return s
	}
	s = redactSecrets(s, secrets, true)
	s = strings.TrimRightFunc(s, isTokenChar)
	return strings.TrimRight(s, " ") + ellipsis
}

// printable drops control, format (zero-width), unassigned and invalid characters and turns every
// run of white space into one space.
func printable(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			continue // a byte that is not UTF-8
		case !unicode.IsPrint(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// runeOffset returns the byte offset of s's character number n (0-based), or -1 when s is no
// longer than n characters.
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return -1
}

// credentialChars reports whether v has only the characters a credential can have.
func credentialChars(v string) bool { return !hasBad(v, notHeaderToken) }

func isTokenChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_+/=.-", r)
}

// scrub removes known secrets from text the server sent back, such as envelope messages, also
// when the server broke them up with characters no credential holds.
func scrub(s string, secrets []Secret) string { return redactSecrets(s, secrets, false) }

// redactSecrets replaces every occurrence of a known secret in s with [REDACTED]. Credentials are
// printable ASCII without spaces (the client refuses others), so they are looked for in s with
// every other character left out: white space, zero-width and combining characters between a
// secret's characters do not hide it. With atCut, s was cut short, and a start of a secret of at
// least minPartial characters at its end is removed as well.
func redactSecrets(s string, secrets []Secret, atCut bool) string {
	for _, sec := range secrets {
		if v := sec.Reveal(); v != "" && !credentialChars(v) {
			s = strings.ReplaceAll(s, v, redacted) // not a well-formed credential: exact matches only
		}
	}
	var proj []byte // s's printable ASCII, without spaces
	var at []int    // the offset in s of each byte of proj
	for i := 0; i < len(s); i++ {
		if c := s[i]; c > ' ' && c < 0x7f {
			proj = append(proj, c)
			at = append(at, i)
		}
	}
	type span struct{ from, to int }
	var spans []span
	for _, sec := range secrets {
		v := sec.Reveal()
		if v == "" || !credentialChars(v) {
			continue
		}
		for off := 0; off <= len(proj)-len(v); {
			i := bytes.Index(proj[off:], []byte(v))
			if i < 0 {
				break
			}
			i += off
			spans = append(spans, span{at[i], at[i+len(v)-1] + 1})
			off = i + len(v)
		}
		if atCut {
			for k := min(len(v)-1, len(proj)); k >= minPartial; k-- {
				if bytes.HasSuffix(proj, []byte(v[:k])) {
					spans = append(spans, span{at[len(proj)-k], -1})
					break
				}
			}
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.from < last {
			if sp.to < 0 {
				return b.String()
			}
			last = max(last, sp.to)
			continue
		}
		b.WriteString(s[last:sp.from])
		if sp.to < 0 {
			return b.String() // a secret's start at the cut: nothing after it is kept
		}
		b.WriteString(redacted)
		last = sp.to
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactHeader returns a copy of h whose values have every echo of a known secret replaced by
// [REDACTED], as redactSecrets finds them.
func redactHeader(h http.Header, secrets []Secret) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		out[k] = make([]string, len(vs))
		for i, v := range vs {
			out[k][i] = redactSecrets(v, secrets, false)
		}
	}
	return out
}

// redactBody returns body with every echo of a known secret replaced by [REDACTED], for a body
// handed on whole (to Do's check) rather than shown: an echo written out, broken up by bytes no
// credential holds (white space, control characters, anything outside printable ASCII), or with
// characters written as JSON escapes (\u0041, \/). Neither dropping invisible characters nor
// decoding the JSON can then put a secret together again. body itself is left as it is.
func redactBody(body []byte, secrets []Secret) []byte {
	for _, sec := range secrets {
		v := sec.Reveal()
		if v == "" {
			continue
		}
		if bytes.Contains(body, []byte(v)) {
			body = bytes.ReplaceAll(body, []byte(v), []byte(redacted))
		}
		if !credentialChars(v) {
			continue // not a well-formed credential: exact matches only
		}
		var out []byte
		last := 0
		for i := 0; i < len(body); i++ {
			if end := echoEnd(body, i, v); end > 0 {
				out = append(append(out, body[last:i]...), redacted...)
				last, i = end, end-1
			}
		}
		if out != nil {
			body = append(out, body[last:]...)
		}
	}
	return body
}

// echoEnd returns where an echo of v that starts at body[i] ends, or -1 when none starts there.
func echoEnd(body []byte, i int, v string) int {
	for k := 0; k < len(v); {
		if i >= len(body) {
			return -1
		}
		c, width := bodyChar(body, i)
		switch {
		case c == 0 && k > 0:
			i += width // a character no credential holds, inside the echo
			continue
		case c != v[k]:
			return -1
		}
		i += width
		k++
	}
	return i
}

// bodyChar reads the character at body[i]: a JSON escape (\u0041, \/, \n...) as the character it
// stands for, any other byte as itself. It returns 0 for a character no credential holds, and the
// number of bytes read.
func bodyChar(body []byte, i int) (byte, int) {
	c := body[i]
	if c == '\\' && i+1 < len(body) {
		switch e := body[i+1]; e {
		case '"', '\\', '/':
			return e, 2
		case 'b', 'f', 'n', 'r', 't':
			return 0, 2
		case 'u':
			if n, ok := hex4(body[i+2:]); ok {
				if n > ' ' && n < 0x7f {
					return byte(n), 6
				}
				return 0, 6
			}
		}
	}
	if c <= ' ' || c >= 0x7f {
		return 0, 1
	}
	return c, 1
}

// hex4 reads the four hexadecimal digits at the start of b.
func hex4(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n := 0
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int(c)
	}
	return n, true
}
