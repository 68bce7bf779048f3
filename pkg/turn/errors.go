package turn

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
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
	// ErrForbidden: the credential lacks permission, such as "Calls Write" (403).
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
// the operation's template, not the URL, and body excerpts are shortened and scrubbed.
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
	return &callError{msg: "turn: " + op + ": invalid argument: " + fmt.Sprintf(format, args...), class: ErrInvalidArgument}
}

const excerptLen = 120

// longToken matches runs that may be credentials or parts of them: a truncated body can hold a
// prefix of a secret that scrub cannot recognise.
var longToken = regexp.MustCompile(`[A-Za-z0-9_+/=.-]{24,}`)

// excerpt returns the start of a body as one printable line, with known secrets and anything that
// looks like one removed.
func excerpt(body []byte, secrets []Secret) string {
	if len(body) > 4*excerptLen {
		body = body[:4*excerptLen]
	}
	s := longToken.ReplaceAllString(scrub(string(body), secrets), redacted)
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > excerptLen {
		cut := excerptLen
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// scrub removes known secrets from text the server sent back, such as envelope messages.
func scrub(s string, secrets []Secret) string {
	for _, sec := range secrets {
		if v := sec.Reveal(); v != "" {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}
