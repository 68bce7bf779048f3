package turn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/cfturn/cfturn/gen/callsclient"
)

// Version is the cfturn version, sent in the User-Agent.
const Version = "0.1.0"

const userAgent = "cfturn-go/" + Version

// Client talks to the Cloudflare TURN key API and the Realtime ICE credentials API.
// A Client is immutable after NewClient and safe for concurrent use by many goroutines.
type Client struct {
	cfg config

	apiAuth   *[]string // Authorization header value for the API token, or nil; see Format
	userAgent []string  // User-Agent header value
}

var acceptJSON = []string{"application/json"}

// NewClient returns a Client configured by opts.
//
// When no WithAPIToken option is given, the token is read from the CLOUDFLARE_API_TOKEN environment
// variable, and when no WithAccountID option is given, the default account from CLOUDFLARE_ACCOUNT_ID
// (see WithGetenv). This is the only place cfturn reads the environment.
//
// A missing API token is not an error here, because minting ICE credentials needs only a TURN key's
// secret; key-management calls made without one fail with ErrNoAPIToken before sending anything.
func NewClient(opts ...Option) (*Client, error) {
	cfg := config{
		apiBase:       DefaultAPIBaseURL + "/",
		iceBase:       DefaultICEBaseURL + "/",
		userAgent:     userAgent,
		getenv:        os.Getenv,
		maxRetries:    DefaultMaxRetries,
		backoffBase:   DefaultBackoffBase,
		backoffMax:    DefaultBackoffMax,
		retryAfterMax: DefaultRetryAfterMax,
		timeout:       DefaultAttemptTimeout,
		maxBody:       DefaultMaxResponseBytes,
	}
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	if err := cfg.resolveICEBase(); err != nil {
		return nil, err
	}
	if !cfg.tokenSet {
		if tok := cfg.getenv("CLOUDFLARE_API_TOKEN"); tok != "" {
			if err := setToken(&cfg, "CLOUDFLARE_API_TOKEN", tok); err != nil {
				return nil, err
			}
		}
	}
	if cfg.accountID == "" {
		if id := cfg.getenv("CLOUDFLARE_ACCOUNT_ID"); id != "" {
			if err := checkAccountID("CLOUDFLARE_ACCOUNT_ID", id); err != nil {
				return nil, err
			}
			cfg.accountID = id
		}
	}
	cfg.getenv = nil
	cfg.hc = ownHTTPClient(cfg.hc)
	return newClient(cfg), nil
}

// Clone returns a copy of c with opts applied on top of its configuration; c is unchanged and the
// environment is not read again. For example, a server that answers its own callers with a
// Retry-After rather than retrying upstream uses c.Clone(turn.WithRetry(0)).
func (c *Client) Clone(opts ...Option) (*Client, error) {
	cfg := c.cfg
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	if err := cfg.resolveICEBase(); err != nil {
		return nil, err
	}
	if cfg.hc != c.cfg.hc {
		cfg.hc = ownHTTPClient(cfg.hc)
	}
	return newClient(cfg), nil
}

func (cfg *config) apply(opts []Option) error {
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(cfg); err != nil {
			return err
		}
	}
	return nil
}

// ownHTTPClient copies the caller's http.Client (WithHTTPClient never mutates it) and makes it stop
// at redirects to another host.
func ownHTTPClient(given *http.Client) *http.Client {
	hc := http.Client{}
	if given != nil {
		hc = *given
	}
	hc.CheckRedirect = sameHostRedirects(hc.CheckRedirect)
	return &hc
}

func newClient(cfg config) *Client {
	c := &Client{cfg: cfg, userAgent: []string{cfg.userAgent}}
	if !cfg.token.IsZero() {
		c.apiAuth = &[]string{"Bearer " + cfg.token.Reveal()}
	}
	return c
}

// Format implements fmt.Formatter: every verb shows the account and base URLs, never the token.
func (c Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "turn.Client{account:%q api:%q ice:%q token:%v}", c.cfg.accountID, c.cfg.apiBase, c.cfg.iceBase, c.cfg.token)
}

// LogValue implements slog.LogValuer.
func (c *Client) LogValue() slog.Value { return slog.StringValue(fmt.Sprint(*c)) }

// AccountID returns the default account, or "" when there is none.
func (c *Client) AccountID() string { return c.cfg.accountID }

// sameHostRedirects stops at a redirect to another host, so the Authorization header is never
// forwarded to it; the 3xx response then comes back to the client as an error.
func sameHostRedirects(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// operation describes one API operation for sending, retrying, logging and errors. Its method and
// path template come from the spec through gen/callsclient; the request itself is built there too.
type operation struct {
	// Operation is the spec's method and path template. Errors and logs show the template, never
	// the concrete path: it may hold an ICE username.
	callsclient.Operation
	name     string // for errors: "create key"
	envelope bool   // the Cloudflare API envelope (key management) rather than plain statuses
	// emptyFailure: a failure may be {} instead of an envelope, as Cloudflare documents for delete
	emptyFailure bool
	retry        retryRule
	// check, set for Do, judges every complete answer in place of the status rule and the
	// envelope; see Do.
	check func(*Response) error
}

// response is a fully read response of any status.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs op with retries and returns a 2xx response, or with op.check the answer check
// accepted. Every other outcome is an error: an *APIError for an HTTP answer, check's error, the
// context's error, or a transport error.
// secrets lists the credentials of this call, scrubbed from anything the server echoes back.
func (c *Client) send(ctx context.Context, op *operation, req *http.Request, secrets ...Secret) (*response, error) {
	// Header values are set as slices built once per client, not per request.
	var auth []string
	if c.apiAuth != nil && secrets[0].p == c.cfg.token.p {
		auth = *c.apiAuth
	} else {
		auth = []string{"Bearer " + secrets[0].Reveal()}
	}
	req.Header["Authorization"] = auth
	req.Header["User-Agent"] = c.userAgent
	req.Header["Accept"] = acceptJSON

	for attempt := 1; ; attempt++ {
		start := time.Now()
		res, err := c.attempt(ctx, req, attempt)
		retry, retryAfter, err := c.judge(ctx, op, attempt, res, err, secrets)
		c.log(ctx, op, attempt, start, res, err)
		if err == nil {
			return res, nil
		}
		wait, ok := c.retryDelay(ctx, attempt, retry, retryAfter)
		if !ok {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return nil, cancelled(ctx, op, attempt, err)
			}
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, cancelled(ctx, op, attempt, err)
		case <-t.C:
		}
	}
}

// judge turns the outcome of attempt into nil (done) or the call's error, and says whether op's
// rule allows another attempt after that error and what Retry-After the answer asked for.
func (c *Client) judge(ctx context.Context, op *operation, attempt int, res *response, err error, secrets []Secret) (retry bool, retryAfter time.Duration, _ error) {
	var apiErr *APIError
	switch {
	case errors.Is(err, errBodyTooLarge):
		apiErr = unexpected(op, res, secrets, fmt.Sprintf("body over the %d-byte limit", c.cfg.maxBody))
	case err != nil:
		err = c.transportError(ctx, op, err)
		return retryable(op.retry, err), 0, err
	case op.check != nil:
		answer := &Response{StatusCode: res.status, Header: redactHeader(res.header, secrets), Body: redactBody(res.body, secrets), Attempt: attempt}
		err = op.check(answer)
		ra := answer.RetryAfter()
		return retryableAnswer(op.retry, errors.Is(err, ErrRateLimited), errors.Is(err, ErrServer), res.status, ra), ra, err
	case res.status >= 200 && res.status < 300:
		return false, 0, nil
	default:
		apiErr = statusError(op, res, secrets)
	}
	apiErr.Attempts = attempt
	return retryable(op.retry, apiErr), apiErr.RetryAfter, apiErr
}

// cancelled reports a call whose context ended between attempts: the error matches ctx.Err() and
// keeps the last attempt's error.
func cancelled(ctx context.Context, op *operation, attempt int, last error) error {
	return fmt.Errorf("turn: %s: %w after %d attempts, the last: %w", op.name, ctx.Err(), attempt, last)
}

// errBodyTooLarge marks a response body over the configured cap.
var errBodyTooLarge = errors.New("response body over the size limit")

// attempt sends req once and reads the body through the size cap. The first attempt sends the
// body req was built with; later ones replay it through GetBody.
func (c *Client) attempt(ctx context.Context, req *http.Request, n int) (*response, error) {
	if _, ok := ctx.Deadline(); !ok && c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	r := req.WithContext(ctx)
	if n > 1 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	resp, err := c.cfg.hc.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body, resp.ContentLength, c.cfg.maxBody)
	res := &response{status: resp.StatusCode, header: resp.Header, body: body}
	switch {
	case errors.Is(err, errBodyTooLarge):
		return res, err
	case err != nil:
		return res, &readError{err}
	}
	return res, nil
}

// readBody reads r to the end, or to limit bytes and then fails with errBodyTooLarge. A known
// length sizes the buffer in one allocation.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	size := int64(512)
	if length >= 0 {
		size = length + 1 // room to see EOF without growing
	}
	b := make([]byte, 0, min(size, limit+1))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(int64(cap(b)), limit+1)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return b[:limit], errBodyTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// readError is a failure while reading a response body: the server answered, then the
// connection broke.
type readError struct{ err error }

func (e *readError) Error() string { return "reading response: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// transportError wraps a failure to get a complete answer. The URL is left out: its path may hold
// an ICE username, so the operation's template names the request instead.
func (c *Client) transportError(ctx context.Context, op *operation, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %v", ctxErr, err)
	}
	return fmt.Errorf("turn: %s: %s %s: %w", op.name, op.Method, op.Path, err)
}

func (c *Client) log(ctx context.Context, op *operation, attempt int, start time.Time, res *response, err error) {
	if c.cfg.logger == nil || !c.cfg.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", op.name),
		slog.String("method", op.Method),
		slog.String("path", op.Path),
		slog.Int("attempt", attempt),
		slog.Duration("duration", time.Since(start)),
	}
	if res != nil {
		attrs = append(attrs, slog.Int("status", res.status), slog.String("cf_ray", rayID(res.header)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "turn: attempt", attrs...)
}
