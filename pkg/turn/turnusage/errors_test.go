package turnusage_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

var lastHour = func() turnusage.Query {
	now := time.Now()
	return turnusage.Query{From: now.Add(-time.Hour), To: now}
}

func TestRetriesFollowTurnsRules(t *testing.T) {
	cases := []struct {
		name     string
		fault    turntest.Fault
		class    error // nil: success after the retries
		attempts int
	}{
		{"429 twice, then success", turntest.Fault{Status: 429, RetryAfter: "0", Count: 2}, nil, 3},
		{"503 with Retry-After", turntest.Fault{Status: 503, RetryAfter: "1", Count: 1}, nil, 2},
		{"HTML 502 every time", turntest.Fault{Body: turntest.BodyHTML, Count: 10}, turn.ErrServer, 1 + turn.DefaultMaxRetries},
		{"Retry-After over the cap", turntest.Fault{Status: 429, RetryAfter: "3600", Count: 10}, turn.ErrRateLimited, 1},
		{"400 is not retried", turntest.Fault{Status: 400, Count: 10}, turn.ErrBadRequest, 1},
		{"dropped connection, then success", turntest.Fault{Drop: true, Count: 1}, nil, 2},
		{"empty 200", turntest.Fault{Body: turntest.BodyEmpty, Count: 10}, turn.ErrUnexpectedResponse, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, tr := setup(t, nil, turnusage.WithLimits(turnusage.Limits{MaxDuration: 24 * time.Hour, MaxPageSize: 100}))
			tr.RequestsOnly = true // the faults break the answers on purpose
			tc.fault.Operation = turntest.OpGraphQL
			if err := srv.InjectFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			_, err := c.Total(context.Background(), lastHour())
			got := srv.Requests()[string(turntest.OpGraphQL)]
			if tc.class == nil {
				if err != nil {
					t.Fatalf("err = %v, want success after retries", err)
				}
			} else {
				var ue *turnusage.Error
				if !errors.Is(err, tc.class) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a *turnusage.Error matching %v", err, tc.class)
				}
				if ue.Attempts != tc.attempts {
					t.Errorf("Attempts = %d, want %d", ue.Attempts, tc.attempts)
				}
			}
			if got != tc.attempts {
				t.Errorf("the fake saw %d requests, want %d", got, tc.attempts)
			}
		})
	}
}

func TestPermissionErrors(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	c, err := turnusage.NewClient(newTurnClient(t, turn.WithBaseURL(srv.APIBaseURL), turn.WithAPIToken("wrong-token-wrong-token-wrong"),
		turn.WithAccountID(srv.AccountID()), turn.WithHTTPClient(srv.HTTPClient())))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Total(context.Background(), lastHour())
	var ue *turnusage.Error
	if !errors.Is(err, turn.ErrForbidden) || !errors.As(err, &ue) || !strings.Contains(ue.Hint(), "Account Analytics Read") {
		t.Fatalf("err = %v, want ErrForbidden with a hint naming Account Analytics Read", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("the error shows the token: %v", err)
	}

	c, err = turnusage.NewClient(newTurnClient(t, turn.WithBaseURL(srv.APIBaseURL), turn.WithAccountID(srv.AccountID())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Total(context.Background(), lastHour()); !errors.Is(err, turn.ErrNoAPIToken) || !strings.Contains(err.Error(), "Account Analytics Read") {
		t.Errorf("without a token: err = %v, want ErrNoAPIToken naming the permission", err)
	}
	if srv.Requests()[string(turntest.OpGraphQL)] != 1 {
		t.Errorf("requests = %v, want only the first", srv.Requests())
	}
	c, _ = turnusage.NewClient(newTurnClient(t, turn.WithAPIToken(srv.Token())))
	if _, err := c.Total(context.Background(), lastHour()); !errors.Is(err, turnusage.ErrNoAccount) || !errors.Is(err, turn.ErrInvalidArgument) {
		t.Errorf("without an account: err = %v, want ErrNoAccount", err)
	}

	if _, err := turnusage.NewClient(nil); err == nil || !strings.Contains(err.Error(), "turn.NewClient") {
		t.Errorf("NewClient(nil): %v, want an error that says to pass a turn.Client", err)
	}
}

// newTurnClient is turn.NewClient without the environment.
func newTurnClient(t *testing.T, opts ...turn.Option) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(append([]turn.Option{turn.WithGetenv(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Cloudflare answers permission problems and rate limits with HTTP 200 and GraphQL errors, with
// or without partial data: they are errors of the same classes, retried by the same rule.
func TestGraphQLErrorsWith200(t *testing.T) {
	const token = "tok-0123456789abcdefghijklmnopqrstuvwxyz"
	var hits atomic.Int32
	var answer atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cf-Ray", "8f1e2d3c4b5a6978-SJC")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, answer.Load().(string))
	}))
	t.Cleanup(ts.Close)
	c, err := turnusage.NewClient(newTurnClient(t, turn.WithBaseURL(ts.URL+"/client/v4"), turn.WithAPIToken(token),
		turn.WithAccountID("0123456789abcdef0123456789abcdef"), turn.WithBackoff(time.Millisecond, time.Millisecond)),
		turnusage.WithLimits(turnusage.Limits{MaxDuration: time.Hour, MaxPageSize: 10}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body  string
		class error
		hits  int32
		text  string
	}{
		{`{"data":{"viewer":null},"errors":[{"message":"not authorized for that account","path":["viewer","accounts"],"extensions":{"code":"authz","timestamp":"2026-12-01T00:00:00Z"}}]}`,
			turn.ErrForbidden, 1, "turnusage: UsageTotal: 200 OK: not authorized for that account (authz) [cf-ray 8f1e2d3c4b5a6978-SJC]"},
		{`{"data":null,"errors":[{"message":"rate limiter budget depleted, try again after 5 minutes","extensions":{"timestamp":"x"}}]}`,
			turn.ErrRateLimited, 1 + turn.DefaultMaxRetries, ""},
		{`{"data":{"viewer":{"accounts":[]}},"errors":[{"message":"bad token ` + token + ` echoed"}]}`,
			turn.ErrBadRequest, 1, ""},
		{`{"data":null,"errors":null}`, turn.ErrUnexpectedResponse, 1, ""},
	} {
		hits.Store(0)
		answer.Store(tc.body)
		_, err := c.Total(context.Background(), lastHour())
		if !errors.Is(err, tc.class) {
			t.Errorf("%s: err = %v, want %v", tc.body, err, tc.class)
			continue
		}
		if hits.Load() != tc.hits {
			t.Errorf("%s: %d requests, want %d", tc.body, hits.Load(), tc.hits)
		}
		if tc.text != "" && err.Error() != tc.text {
			t.Errorf("Error() = %q\nwant      %q", err.Error(), tc.text)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(fmt.Sprintf("%+v %#v", err, c), token) {
			t.Errorf("the token leaked: %v", err)
		}
	}
}

// The debug log of every attempt, failures included, never holds the token.
func TestLogsHoldNoToken(t *testing.T) {
	var log syncbuf.Buffer
	srv, c, tr := setupTurn(t, nil, []turn.Option{turn.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))), turn.WithRetry(1)})
	tr.RequestsOnly = true
	srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Body: turntest.BodyHTML, Count: 1})
	if _, err := c.Total(context.Background(), lastHour()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "turn: attempt"); n < 3 {
		t.Errorf("%d attempt records, want the settings query, the failed attempt and its retry:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), srv.Token()) || strings.Contains(fmt.Sprintf("%v %+v", c, c), srv.Token()) {
		t.Errorf("the token reached the log or the client's formatting:\n%s", log.String())
	}
}
