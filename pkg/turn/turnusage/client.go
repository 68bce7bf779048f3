package turnusage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/Khan/genqlient/graphql"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Client reads TURN usage from Cloudflare's GraphQL Analytics API. It sends every query through a
// turn.Client (turn.Client.Do), so the API token, account, base URL, HTTP client, logger, retries,
// timeouts and size cap are that client's. It is immutable after NewClient (apart from the dataset
// limits it caches) and safe for concurrent use.
type Client struct {
	turn    *turn.Client
	account string

	mu     sync.Mutex
	limits *Limits // read from the settings node once
}

// NewClient returns a Client that reads the usage of c's default account (c.AccountID()) through c.
// The API token c was given needs "Account Analytics Read" on the account. Only WithLimits
// configures the usage client itself; the rest is c's configuration.
func NewClient(c *turn.Client, opts ...Option) (*Client, error) {
	if c == nil {
		return nil, errors.New("turnusage: NewClient: the turn.Client is nil: pass one from turn.NewClient, with an API token that has Account Analytics Read")
	}
	var cfg config
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	return &Client{turn: c, account: c.AccountID(), limits: cfg.limits}, nil
}

// Format implements fmt.Formatter: every verb shows the turn.Client's account and base URLs, never
// the token.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "turnusage.Client{%v}", c.turn)
}

// LogValue implements slog.LogValuer.
func (c *Client) LogValue() slog.Value { return slog.StringValue(fmt.Sprint(c)) }

// AccountID returns the account whose usage the client reads.
func (c *Client) AccountID() string { return c.account }

// ready reports a missing account before anything is sent; turn.Client.Do reports a missing token.
func (c *Client) ready() error {
	if c.account == "" {
		return ErrNoAccount
	}
	return nil
}

// callError is a failure found before any I/O; it matches turn.ErrInvalidArgument.
type callError struct{ msg string }

func (e *callError) Error() string        { return e.msg }
func (e *callError) Is(target error) bool { return target == turn.ErrInvalidArgument }

func invalid(format string, args ...any) error {
	return &callError{msg: "turnusage: invalid argument: " + fmt.Sprintf(format, args...)}
}

// gql is the graphql.Client the generated queries call: it encodes a query, sends it with
// turn.Client.Do, and decodes each answer into data or an *Error whose class tells Do whether to
// retry.
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
	body, err := json.Marshal(wireRequest{Query: req.Query, Variables: req.Variables, OperationName: req.OpName})
	if err != nil {
		return fmt.Errorf("turnusage: %s: encode variables: %w", req.OpName, err)
	}
	err = g.c.turn.Do(ctx, turn.DoParams{Name: req.OpName, Method: http.MethodPost, Path: "graphql", Body: body, Idempotent: true}, func(r *turn.Response) error {
		return decode(req.OpName, r, resp)
	})
	if errors.Is(err, turn.ErrNoAPIToken) {
		return fmt.Errorf("%w (reading usage needs one with Account Analytics Read)", err)
	}
	return err
}

// decode turns one answer into resp.Data or an *Error. The body comes from turn.Client.Do, which
// has removed the API token from it.
func decode(op string, r *turn.Response, resp *graphql.Response) error {
	e := &Error{Operation: op, StatusCode: r.StatusCode, RayID: clean(r.Header.Get("Cf-Ray"), 64), RetryAfter: r.RetryAfter(), Attempts: r.Attempt}
	var w wireResponse
	jsonErr := json.Unmarshal(r.Body, &w)
	if jsonErr == nil {
		for _, we := range w.Errors {
			e.Errors = append(e.Errors, graphQLError(we))
		}
	}
	ok := r.StatusCode >= 200 && r.StatusCode < 300
	switch {
	case !ok:
		if jsonErr != nil || len(e.Errors) == 0 {
			e.Excerpt = clean(string(r.Body), excerptLen)
		}
		e.class = classify(r.StatusCode, e.Errors)
		return e
	case jsonErr != nil:
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(r.Body), excerptLen)
		return e
	case len(e.Errors) > 0:
		e.class = classify(r.StatusCode, e.Errors)
		return e
	case len(w.Data) == 0 || string(w.Data) == "null":
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(r.Body), excerptLen)
		return e
	}
	if err := json.Unmarshal(w.Data, resp.Data); err != nil {
		e.class, e.Excerpt = turn.ErrUnexpectedResponse, clean(string(r.Body), excerptLen)
		return e
	}
	return nil
}

func graphQLError(we wireError) GraphQLError {
	out := GraphQLError{Message: clean(we.Message, messageLen)}
	code := we.Extensions.Code
	if len(code) == 0 {
		code = we.Code
	}
	if len(code) > 0 {
		var s string
		if json.Unmarshal(code, &s) != nil {
			s = string(code)
		}
		out.Code = clean(s, 40)
	}
	for _, p := range we.Path {
		var s string
		if json.Unmarshal(p, &s) != nil {
			s = string(p)
		}
		out.Path = append(out.Path, clean(s, 80))
	}
	return out
}
