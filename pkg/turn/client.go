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
)

// Version is the cfturn version, sent in the User-Agent.
const Version = "0.1.0"

const userAgent = "cfturn-go/" + Version

// Client talks to the Cloudflare TURN key API and the Realtime ICE credentials API.
// A Client is immutable after NewClient and safe for concurrent use by many goroutines.
type Client struct {
	cfg config
}

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
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if !cfg.tokenSet {
		if tok := cfg.getenv("CLOUDFLARE_API_TOKEN"); tok != "" {
			if err := WithAPIToken(tok)(&cfg); err != nil {
				return nil, fmt.Errorf("turn: CLOUDFLARE_API_TOKEN: %w", errors.Unwrap(err))
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

	hc := http.Client{}
	if cfg.hc != nil {
		hc = *cfg.hc
	}
	hc.CheckRedirect = sameHostRedirects(hc.CheckRedirect)
	cfg.hc = &hc
	return &Client{cfg: cfg}, nil
}

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

// operation describes one API operation for sending, retrying, logging and errors.
type operation struct {
	name     string // for errors: "create key"
	method   string
	path     string // template, never the concrete path: it may hold an ICE username
	envelope bool   // the Cloudflare API envelope (key management) rather than plain statuses
	retry    retryRule
}

// response is a fully read response of any status.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs op with retries and returns a 2xx response. Every other outcome is an error:
// an *APIError for an HTTP answer, the context's error, or a transport error.
// secrets lists the credentials of this call, scrubbed from anything the server echoes back.
func (c *Client) send(ctx context.Context, op *operation, req *http.Request, secrets ...Secret) (*response, error) {
	req.Header.Set("Authorization", "Bearer "+secrets[0].Reveal())
	req.Header.Set("User-Agent", c.cfg.userAgent)
	req.Header.Set("Accept", "application/json")

	for attempt := 1; ; attempt++ {
		start := time.Now()
		res, err := c.attempt(ctx, req)
		if err == nil && res.status >= 200 && res.status < 300 {
			c.log(ctx, op, attempt, start, res, nil)
			return res, nil
		}
		if err != nil {
			err = c.transportError(ctx, op, err)
		} else {
			err = c.statusError(op, res, attempt, secrets)
		}
		c.log(ctx, op, attempt, start, res, err)

		wait, ok := c.retryDelay(ctx, op, attempt, res, err)
		if !ok {
			if apiErr, isAPI := err.(*APIError); isAPI {
				apiErr.Attempts = attempt
			}
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("turn: %s: %w (after %d attempts; last: %v)", op.name, ctx.Err(), attempt, err)
		case <-t.C:
		}
	}
}

// errBodyTooLarge marks a response body over the configured cap.
var errBodyTooLarge = errors.New("response body over the size limit")

// attempt sends req once and reads the body through the size cap.
func (c *Client) attempt(ctx context.Context, req *http.Request) (*response, error) {
	if _, ok := ctx.Deadline(); !ok && c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	r := req.WithContext(ctx)
	if req.GetBody != nil {
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.maxBody+1))
	res := &response{status: resp.StatusCode, header: resp.Header, body: body}
	if err != nil {
		return res, &readError{err}
	}
	if int64(len(body)) > c.cfg.maxBody {
		res.body = body[:c.cfg.maxBody]
		return res, errBodyTooLarge
	}
	return res, nil
}

// readError is a failure while reading a response body: the server answered, then the
// connection broke.
type readError struct{ err error }

func (e *readError) Error() string { return "reading response: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// transportError wraps a failure to get a complete answer. The URL is left out: its path may hold
// an ICE username, so the operation's template names the request instead.
func (c *Client) transportError(ctx context.Context, op *operation, err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return fmt.Errorf("turn: %s: %w: response body over the %d-byte limit", op.name, ErrUnexpectedResponse, c.cfg.maxBody)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %v", ctxErr, err)
	}
	return fmt.Errorf("turn: %s: %s %s: %w", op.name, op.method, op.path, err)
}

func (c *Client) log(ctx context.Context, op *operation, attempt int, start time.Time, res *response, err error) {
	if c.cfg.logger == nil || !c.cfg.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", op.name),
		slog.String("method", op.method),
		slog.String("path", op.path),
		slog.Int("attempt", attempt),
		slog.Duration("duration", time.Since(start)),
	}
	if res != nil {
		attrs = append(attrs, slog.Int("status", res.status), slog.String("cf_ray", res.header.Get("Cf-Ray")))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "turn: attempt", attrs...)
}
