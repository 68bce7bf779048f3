package turnusage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Khan/genqlient/graphql"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Client reads TURN usage from Cloudflare's GraphQL Analytics API. It is immutable after
// NewClient (apart from the dataset limits it caches) and safe for concurrent use.
type Client struct {
	cfg      config
	endpoint string
	auth     []string
	ua       []string

	mu     sync.Mutex
	limits *Limits // read from the settings node once
}

// NewClient returns a Client configured by opts. Without WithAPIToken the token is read from
// CLOUDFLARE_API_TOKEN, without WithAccountID the account from CLOUDFLARE_ACCOUNT_ID (see
// WithGetenv); this is the only place the package reads the environment.
func NewClient(opts ...Option) (*Client, error) {
	cfg := defaults()
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
				return nil, fmt.Errorf("turnusage: CLOUDFLARE_API_TOKEN: %w", err)
			}
		}
	}
	if cfg.accountID == "" {
		if id := cfg.getenv("CLOUDFLARE_ACCOUNT_ID"); id != "" {
			if err := WithAccountID(id)(&cfg); err != nil {
				return nil, fmt.Errorf("turnusage: CLOUDFLARE_ACCOUNT_ID: %w", err)
			}
		}
	}
	cfg.getenv = nil
	hc := http.Client{}
	if cfg.hc != nil {
		hc = *cfg.hc
	}
	next := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
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
	cfg.hc = &hc
	c := &Client{cfg: cfg, endpoint: cfg.apiBase + "/graphql", ua: []string{"cfturn-go/" + turn.Version}, limits: cfg.limits}
	if !cfg.token.IsZero() {
		c.auth = []string{"Bearer " + cfg.token.Reveal()}
	}
	return c, nil
}

// Format implements fmt.Formatter: every verb shows the account and endpoint, never the token.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "turnusage.Client{account:%q endpoint:%q token:%v}", c.cfg.accountID, c.endpoint, c.cfg.token)
}

// LogValue implements slog.LogValuer.
func (c *Client) LogValue() slog.Value { return slog.StringValue(fmt.Sprint(c)) }

// AccountID returns the account whose usage the client reads.
func (c *Client) AccountID() string { return c.cfg.accountID }

// ready reports a missing token or account before anything is sent.
func (c *Client) ready() error {
	switch {
	case c.auth == nil:
		return &callError{msg: "turnusage: no API token: pass turnusage.WithAPIToken or set CLOUDFLARE_API_TOKEN (it needs Account Analytics Read)", class: turn.ErrNoAPIToken}
	case c.cfg.accountID == "":
		return ErrNoAccount
	}
	return nil
}

// callError is a failure found before any I/O, matching a class.
type callError struct {
	msg   string
	class error
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Is(target error) bool {
	return target == e.class || target == turn.ErrInvalidArgument && e.class != turn.ErrNoAPIToken
}

func invalid(format string, args ...any) error {
	return &callError{msg: "turnusage: invalid argument: " + fmt.Sprintf(format, args...), class: turn.ErrInvalidArgument}
}

// gql is the graphql.Client the generated queries call: the one path that sends, retries and
// turns answers into errors.
type gql struct{ c *Client }

type wireRequest struct {
	Query         string `json:"query"`
	Variables     any    `json:"variables,omitempty"`
	OperationName string `json:"operationName,omitempty"`
}

// wireError is an entry of "errors": GraphQL's shape, or the Cloudflare envelope's numeric code.
type wireError struct {
	Message    string            `json:"message"`
	Path       []json.RawMessage `json:"path"`
	Code       json.RawMessage   `json:"code"`
	Extensions struct {
		Code json.RawMessage `json:"code"`
	} `json:"extensions"`
}

type wireResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []wireError     `json:"errors"`
}

func (g gql) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	c := g.c
	body, err := json.Marshal(wireRequest{Query: req.Query, Variables: req.Variables, OperationName: req.OpName})
	if err != nil {
		return fmt.Errorf("turnusage: %s: encode variables: %w", req.OpName, err)
	}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, header, data, err := c.attempt(ctx, body)
		if err == nil {
			err = c.decode(req.OpName, status, header, data, resp)
		} else {
			err = c.transportError(ctx, req.OpName, err)
		}
		c.log(ctx, req.OpName, attempt, start, status, header, err)
		if err == nil {
			return nil
		}
		var uerr *Error
		if errors.As(err, &uerr) {
			uerr.Attempts = attempt
		}
		wait, ok := c.retryDelay(ctx, attempt, err)
		if !ok {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("turnusage: %s: %w after %d attempts, the last: %w", req.OpName, ctx.Err(), attempt, err)
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("turnusage: %s: %w after %d attempts, the last: %w", req.OpName, ctx.Err(), attempt, err)
		case <-t.C:
		}
	}
}

var errBodyTooLarge = errors.New("response body over the size limit")

// attempt posts body once and reads the answer through the size cap.
func (c *Client) attempt(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	if _, ok := ctx.Deadline(); !ok && c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	r.Header["Authorization"] = c.auth
	r.Header["User-Agent"] = c.ua
	r.Header["Content-Type"] = []string{"application/json"}
	r.Header["Accept"] = []string{"application/json"}
	res, err := c.cfg.hc.Do(r)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, c.cfg.maxBody+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(data)) > c.cfg.maxBody {
		return res.StatusCode, res.Header, nil, errBodyTooLarge
	}
	return res.StatusCode, res.Header, data, nil
}

// decode turns one answer into resp.Data or an *Error.
func (c *Client) decode(op string, status int, header http.Header, data []byte, resp *graphql.Response) error {
	e := &Error{Operation: op, StatusCode: status, RayID: clean(header.Get("Cf-Ray"), 64)}
	if ra := header.Get("Retry-After"); ra != "" {
		e.RetryAfter = parseRetryAfter(ra, time.Now())
	}
	var w wireResponse
	jsonErr := json.Unmarshal(data, &w)
	if jsonErr == nil {
		for _, we := range w.Errors {
			e.Errors = append(e.Errors, c.graphQLError(we))
		}
	}
	ok := status >= 200 && status < 300
	switch {
	case !ok:
		if jsonErr != nil || len(e.Errors) == 0 {
			e.Excerpt = clean(string(data), excerptLen, c.cfg.token)
		}
		e.class = classify(status, e.Errors)
		return e
	case jsonErr != nil:
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(data), excerptLen, c.cfg.token)
		return e
	case len(e.Errors) > 0:
		e.class = classify(status, e.Errors)
		return e
	case len(w.Data) == 0 || string(w.Data) == "null":
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(data), excerptLen, c.cfg.token)
		return e
	}
	if err := json.Unmarshal(w.Data, resp.Data); err != nil {
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(data), excerptLen, c.cfg.token)
		return e
	}
	return nil
}

func (c *Client) graphQLError(we wireError) GraphQLError {
	out := GraphQLError{Message: clean(we.Message, messageLen, c.cfg.token)}
	code := we.Extensions.Code
	if len(code) == 0 {
		code = we.Code
	}
	if len(code) > 0 {
		var s string
		if json.Unmarshal(code, &s) != nil {
			s = string(code)
		}
		out.Code = clean(s, 40, c.cfg.token)
	}
	for _, p := range we.Path {
		var s string
		if json.Unmarshal(p, &s) != nil {
			s = string(p)
		}
		out.Path = append(out.Path, clean(s, 80, c.cfg.token))
	}
	return out
}

// transportError wraps a failure to get a complete answer, without the URL.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return &Error{Operation: op, StatusCode: http.StatusOK, class: turn.ErrUnexpectedResponse, Excerpt: fmt.Sprintf("body over the %d-byte limit", c.cfg.maxBody)}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %v", ctxErr, err)
	}
	return fmt.Errorf("turnusage: %s: POST /graphql: %w", op, err)
}

// retryDelay follows turn's rule for reads: 429, 5xx (and their GraphQL equivalents) and transport
// failures are retried with full-jitter backoff; a Retry-After over the cap ends the retries.
func (c *Client) retryDelay(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	if attempt > c.cfg.maxRetries || ctx.Err() != nil {
		return 0, false
	}
	// A transport failure is retried like every failure of a read: a repeat does no harm.
	var e *Error
	if errors.As(err, &e) && e.class != turn.ErrRateLimited && e.class != turn.ErrServer {
		return 0, false
	}
	var wait time.Duration
	if e != nil && e.RetryAfter > 0 {
		if e.RetryAfter > c.cfg.retryAfterMax {
			return 0, false
		}
		wait = e.RetryAfter
	} else {
		ceiling := c.cfg.backoffBase << min(attempt-1, 30)
		if ceiling > c.cfg.backoffMax || ceiling <= 0 {
			ceiling = c.cfg.backoffMax
		}
		wait = rand.N(ceiling + 1)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent, malformed or past.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (c *Client) log(ctx context.Context, op string, attempt int, start time.Time, status int, header http.Header, err error) {
	if c.cfg.logger == nil || !c.cfg.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", op),
		slog.Int("attempt", attempt),
		slog.Duration("duration", time.Since(start)),
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status), slog.String("cf_ray", header.Get("Cf-Ray")))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "turnusage: attempt", attrs...)
}
