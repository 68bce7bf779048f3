package turn

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cfturn/cfturn/gen/callsclient"
)

// Response is an answer Do read in full (through the client's size cap, WithMaxResponseBytes).
type Response struct {
	StatusCode int
	// Header and Body are the answer's, with every echo of the API token replaced by [REDACTED],
	// so that an excerpt of either can go into an error or a log.
	Header  http.Header
	Body    []byte
	Attempt int // which attempt this answer came to, 1 for the first
}

// RetryAfter returns the answer's Retry-After header as a duration: delay-seconds or an HTTP
// date, 0 when the header is absent, malformed or in the past. Do honours it the same way.
func (r *Response) RetryAfter() time.Duration {
	return parseRetryAfter(r.Header.Get("Retry-After"), time.Now())
}

// DoParams is a request Client.Do sends.
type DoParams struct {
	// Name names the call in errors and logs, e.g. "UsageTotal". Required.
	Name string
	// Method is the HTTP method, e.g. http.MethodPost; "" is GET.
	Method string
	// Path is relative to the API root (WithBaseURL), e.g. "graphql". It may carry a query, which
	// errors and logs leave out, and must otherwise hold no secret.
	Path string
	// Body, when not nil, is sent as application/json.
	Body []byte
	// Idempotent says the request may be sent again after it may have reached the server: a read
	// sent with POST, such as a GraphQL query. GET, HEAD, PUT, DELETE and OPTIONS are idempotent
	// whatever it says. A request that is not is retried only when it surely never reached the
	// server (a failed connection, 429, or 503 with Retry-After), as CreateKey is.
	Idempotent bool
}

// Do sends a request to another endpoint of the Cloudflare API, e.g. the GraphQL Analytics API
// (package turnusage), as the client sends its own: API token, User-Agent, redirect policy,
// per-attempt timeout, size cap, debug log, retries.
//
// check turns each complete answer, whatever its status, into nil (done) or an error. Do retries
// transport failures and errors of check that match ErrRateLimited or ErrServer, under
// p.Idempotent's rule (WithRetry, WithBackoff), honouring the answer's Retry-After up to
// WithRetryAfterMax, and returns the last error as check returned it. A body over the size cap
// is not handed to check: Do fails with an *APIError that matches ErrUnexpectedResponse.
//
// Without an API token Do fails with ErrNoAPIToken before sending; a malformed name, method or
// path fails with ErrInvalidArgument.
func (c *Client) Do(ctx context.Context, p DoParams, check func(*Response) error) error {
	name, method := p.Name, cmp.Or(p.Method, http.MethodGet)
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return invalidArg("Do", "DoParams.Name %q is empty or not one printable line; name the call, e.g. \"UsageTotal\"", name)
	}
	if check == nil {
		return invalidArg(name, "Do needs a check function that turns each answer into nil or an error")
	}
	if strings.ContainsFunc(method, notMethodChar) || method != strings.ToUpper(method) {
		return invalidArg(name, "DoParams.Method %q is not an HTTP method such as POST", method)
	}
	token, err := c.apiToken(name)
	if err != nil {
		return err
	}
	shown, err := checkDoPath(name, p.Path)
	if err != nil {
		return err
	}
	var r io.Reader // nil, not a nil *bytes.Reader, when there is no body
	if p.Body != nil {
		r = bytes.NewReader(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.apiBase+p.Path, r)
	if err != nil {
		return buildError(&operation{name: name}, err) // unreachable: the method and path were checked
	}
	if p.Body != nil {
		req.Header["Content-Type"] = jsonContentType
	}
	rule := retryUnsent
	switch {
	case p.Idempotent, method == http.MethodGet, method == http.MethodHead, method == http.MethodPut,
		method == http.MethodDelete, method == http.MethodOptions:
		rule = retryIdempotent
	}
	op := &operation{Operation: callsclient.Operation{Method: req.Method, Path: shown}, name: name, retry: rule, check: check}
	_, err = c.send(ctx, op, req, token)
	return err
}

var jsonContentType = []string{"application/json"}

// notMethodChar reports a character an HTTP method (a token, RFC 9110) cannot hold.
func notMethodChar(r rune) bool {
	return r >= 0x7f || !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// checkDoPath refuses a path that would leave the API root, and returns what errors and logs show
// of it: the path from the root, without its query.
func checkDoPath(op, path string) (string, error) {
	p, _, _ := strings.Cut(path, "?")
	u, err := url.Parse(path)
	switch {
	case p == "" || strings.HasPrefix(p, "/"):
		return "", invalidArg(op, "path %s must be relative to the API root, e.g. \"graphql\"", describeURL(p))
	case err != nil || u.Scheme != "" || u.Host != "" || strings.ContainsAny(path, "\\#") || strings.ContainsFunc(p, notHeaderToken):
		return "", invalidArg(op, "path %s is not a path below the API root, such as \"graphql\"", describeURL(p))
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", invalidArg(op, "path %s climbs out of the API root; give the path below it, e.g. \"graphql\"", describeURL(p))
		}
	}
	return "/" + p, nil
}
