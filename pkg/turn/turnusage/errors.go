package turnusage

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cfturn/cfturn/pkg/turn"
)

// ErrNoAccount: a query was made through a turn.Client without a default account (turn.WithAccountID
// or CLOUDFLARE_ACCOUNT_ID); nothing was sent. It matches turn.ErrInvalidArgument too.
var ErrNoAccount error = &callError{msg: "turnusage: no account ID: pass turn.WithAccountID to the turn.Client or set CLOUDFLARE_ACCOUNT_ID"}

var errUnexpected = turn.ErrUnexpectedResponse

// GraphQLError is one entry of a GraphQL response's "errors" list, cleaned for display.
type GraphQLError struct {
	Message string   // what went wrong, one printable line
	Path    []string // the field it applies to, from the root
	Code    string   // extensions.code (or the envelope's numeric code), when the server sent one
}

// Error is a failed analytics query: an HTTP status other than 2xx, GraphQL errors (Cloudflare
// answers many with 200), or a body that is not a GraphQL response. It matches turn's error
// classes with errors.Is: turn.ErrUnauthorized, turn.ErrForbidden, turn.ErrRateLimited,
// turn.ErrServer, turn.ErrBadRequest, turn.ErrUnexpectedResponse. It never holds the token.
type Error struct {
	Operation  string         // the query, e.g. "UsageTotal"
	StatusCode int            // HTTP status, 200 for GraphQL errors answered with 200
	Errors     []GraphQLError // in the server's order
	RayID      string         // cf-ray response header, for Cloudflare support
	RetryAfter time.Duration  // from Retry-After, when the server sent one
	Excerpt    string         // a short, cleaned start of a body that was not a GraphQL response
	Attempts   int            // attempts made, retries included

	class error // the turn sentinel this error matches
}

// Error returns one stable, secret-free line, e.g.
//
//	turnusage: UsageTotal: 200 OK: not authorized for that account (authz) [cf-ray 8f1e2d3c4b5a6978-SJC]
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("turnusage: ")
	b.WriteString(e.Operation)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	for i, m := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(m.Message)
		if m.Code != "" {
			b.WriteString(" (" + m.Code + ")")
		}
	}
	if e.class == turn.ErrUnexpectedResponse {
		b.WriteString(": unexpected response")
	}
	if e.Excerpt != "" {
		fmt.Fprintf(&b, ": %q", e.Excerpt)
	}
	if e.RayID != "" {
		b.WriteString(" [cf-ray " + e.RayID + "]")
	}
	return b.String()
}

// Is matches the turn error class of the failure.
func (e *Error) Is(target error) bool { return target != nil && target == e.class }

// Hint says what to check after an authentication or permission failure, or returns "".
func (e *Error) Hint() string {
	switch e.class {
	case turn.ErrUnauthorized:
		return "the API token was refused: check that it is complete and has not expired or been revoked"
	case turn.ErrForbidden:
		return `the API token is wrong, expired or revoked, or lacks permission: reading TURN usage needs "Account Analytics Read" on this account (Calls Read or Write is not enough)`
	case turn.ErrRateLimited:
		return "Cloudflare allows about 300 analytics queries per 5 minutes: query less often or over longer ranges"
	}
	return ""
}

// classify gives the class of an HTTP answer with the GraphQL errors it carried.
func classify(status int, errs []GraphQLError) error {
	switch {
	case status == http.StatusUnauthorized:
		return turn.ErrUnauthorized
	case status == http.StatusForbidden:
		return turn.ErrForbidden
	case status == http.StatusTooManyRequests:
		return turn.ErrRateLimited
	case status >= 500:
		return turn.ErrServer
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		if c := classifyMessages(errs); c != nil && c != turn.ErrBadRequest {
			return c
		}
		return turn.ErrBadRequest
	case status >= 200 && status < 300:
		if c := classifyMessages(errs); c != nil {
			return c
		}
		return turn.ErrBadRequest
	}
	return turn.ErrUnexpectedResponse
}

// classifyMessages reads the class from GraphQL errors, which Cloudflare sends with 200 for
// permission problems and rate limits: the first error that names one decides.
func classifyMessages(errs []GraphQLError) error {
	for _, e := range errs {
		code := strings.ToLower(e.Code)
		msg := strings.ToLower(e.Message)
		switch {
		case code == "authz" || strings.Contains(msg, "not authorized") || strings.Contains(msg, "does not have permission") || strings.Contains(msg, "access denied"):
			return turn.ErrForbidden
		case code == "authn" || code == "10000" || code == "10001" || strings.Contains(msg, "authentication"):
			return turn.ErrUnauthorized
		case strings.Contains(code, "rate") || strings.Contains(msg, "rate limit") || strings.Contains(msg, "quota exceeded") || strings.Contains(msg, "budget depleted"):
			return turn.ErrRateLimited
		case strings.Contains(msg, "try again later") || strings.Contains(msg, "too many queries in progress"):
			return turn.ErrServer
		}
	}
	if len(errs) > 0 {
		return turn.ErrBadRequest
	}
	return nil
}

const (
	messageLen = 300 // characters kept of each server message
	excerptLen = 120 // characters kept of an unexpected body
)

// clean makes server text safe to show: one line of printable characters, bounded. The token is
// not there to remove: turn.Client.Do replaced every echo of it in the body.
func clean(s string, limit int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			continue
		}
		if n == limit {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
