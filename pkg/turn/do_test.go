package turn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// doServer answers Do's requests with answers[i] for the i-th request (the last one again after
// the list ends) and records what it was sent.
type doServer struct {
	answers []func(w http.ResponseWriter, r *http.Request)

	mu       sync.Mutex
	requests []doRequest
}

type doRequest struct {
	method, path, query string
	header              http.Header
	body                []byte
}

func (s *doServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, doRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	s.mu.Unlock()
	s.answers[min(n, len(s.answers)-1)](w, r)
}

func (s *doServer) sent() []doRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// answer writes status with the headers given as name, value pairs and body.
func answer(status int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// doClient returns a client of srv, served in the test's synctest bubble.
func doClient(t *testing.T, srv *doServer, opts ...turn.Option) *turn.Client {
	t.Helper()
	url, tr := serveInBubble(t, srv)
	c, err := turn.NewClient(append([]turn.Option{
		turn.WithGetenv(nil),
		turn.WithAPIToken(testToken),
		turn.WithAccountID(testAccount),
		turn.WithBaseURL(url + prefix + "/client/v4"),
		turn.WithHTTPClient(&http.Client{Transport: tr}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// errTeapot is an error of check's own, of no class Do retries.
var errTeapot = errors.New("check: not a class Do retries")

// classify is a check as a caller writes one: 2xx is done, 429 and 5xx match the classes Do
// retries, anything else is an error of the caller's own.
func classify(seen *[]*turn.Response) func(*turn.Response) error {
	return func(r *turn.Response) error {
		*seen = append(*seen, r)
		switch {
		case r.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("%d: %w", r.StatusCode, turn.ErrRateLimited)
		case r.StatusCode >= 500:
			return fmt.Errorf("%d: %w", r.StatusCode, turn.ErrServer)
		case r.StatusCode >= 300:
			return fmt.Errorf("%d: %w", r.StatusCode, errTeapot)
		}
		return nil
	}
}

// Do retries what check classes as rate limited or a server failure, waiting the answer's
// Retry-After, and transport failures; it sends the request as the client sends its own.
func TestDoRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &doServer{answers: []func(http.ResponseWriter, *http.Request){
			answer(429, `{"errors":[{"message":"slow down"}]}`, "Retry-After", "7"),
			answer(503, `<html>overloaded</html>`, "Retry-After", "3", "Cf-Ray", "8f1e2d3c4b5a6978-SJC"),
			drop,
			answer(200, `{"data":{"ok":true}}`, "Cf-Ray", "8f1e2d3c4b5a6979-SJC"),
		}}
		c := doClient(t, srv, turn.WithUserAgent("myapp/1.0"))
		var seen []*turn.Response
		body := []byte(`{"query":"{ viewer { zones { zoneTag } } }"}`)
		start := time.Now()
		err := c.Do(context.Background(), turn.DoParams{Name: "ZoneList", Method: http.MethodPost, Path: "graphql?x=1", Body: body, Idempotent: true}, classify(&seen))
		if err != nil {
			t.Fatalf("Do: %v, want success on the fourth attempt", err)
		}
		// 7 s and 3 s of Retry-After, then a backoff of at most DefaultBackoffBase·4 after the drop.
		if waited := time.Since(start); waited < 10*time.Second || waited > 10*time.Second+4*turn.DefaultBackoffBase {
			t.Errorf("Do took %v, want the 10 s of Retry-After and one backoff", waited)
		}
		if len(seen) != 3 || seen[0].Attempt != 1 || seen[1].Attempt != 2 || seen[2].Attempt != 4 || seen[2].StatusCode != 200 ||
			string(seen[2].Body) != `{"data":{"ok":true}}` || seen[2].Header.Get("Cf-Ray") != "8f1e2d3c4b5a6979-SJC" || seen[0].RetryAfter() != 7*time.Second {
			t.Errorf("check saw %+v, want the answers of attempts 1, 2 and 4", seen)
		}
		sent := srv.sent()
		if len(sent) != 4 {
			t.Fatalf("the server got %d requests, want 4", len(sent))
		}
		for i, r := range sent {
			if r.method != "POST" || r.path != "/client/v4/graphql" || r.query != "x=1" || !bytes.Equal(r.body, body) {
				t.Errorf("request %d: %s %s?%s %q, want POST /client/v4/graphql?x=1 with the body on every attempt", i+1, r.method, r.path, r.query, r.body)
			}
			if got := r.header.Get("Authorization"); got != "Bearer "+testToken {
				t.Errorf("request %d: Authorization %q, want the API token", i+1, got)
			}
			if r.header.Get("Content-Type") != "application/json" || r.header.Get("User-Agent") != "myapp/1.0 cfturn-go/"+turn.Version {
				t.Errorf("request %d: Content-Type %q, User-Agent %q", i+1, r.header.Get("Content-Type"), r.header.Get("User-Agent"))
			}
		}
	})
}

// What check does not class as retryable is returned at once, as check returned it; so is the
// last failure when the retries run out or a Retry-After is over the cap.
func TestDoStops(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(http.ResponseWriter, *http.Request)
		opts     []turn.Option
		want     error
		attempts int
	}{
		{"400 is not retried", answer(400, `{"errors":[{"message":"bad query"}]}`), nil, errTeapot, 1},
		{"a redirect elsewhere is check's to judge", answer(302, "", "Location", "https://elsewhere.example/"), nil, errTeapot, 1},
		{"5xx until the retries run out", answer(502, "bad gateway"), []turn.Option{turn.WithRetry(2)}, turn.ErrServer, 3},
		{"Retry-After over the cap", answer(429, "", "Retry-After", "3600"), []turn.Option{turn.WithRetryAfterMax(time.Minute)}, turn.ErrRateLimited, 1},
		{"no retries", answer(503, ""), []turn.Option{turn.WithRetry(0)}, turn.ErrServer, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &doServer{answers: []func(http.ResponseWriter, *http.Request){tc.answer}}
				c := doClient(t, srv, tc.opts...)
				var seen []*turn.Response
				err := c.Do(context.Background(), turn.DoParams{Name: "ZoneList", Method: http.MethodPost, Path: "graphql", Body: []byte(`{}`), Idempotent: true}, classify(&seen))
				if !errors.Is(err, tc.want) {
					t.Fatalf("Do: %v, want check's error matching %v", err, tc.want)
				}
				var apiErr *turn.APIError
				if errors.As(err, &apiErr) {
					t.Errorf("Do: %v is an *APIError, want check's own error", err)
				}
				if n := len(srv.sent()); n != tc.attempts || len(seen) != tc.attempts || seen[len(seen)-1].Attempt != tc.attempts {
					t.Errorf("%d requests, %d answers checked, want %d", n, len(seen), tc.attempts)
				}
			})
		})
	}
}

// A request that is not idempotent is sent again only when it surely never reached the server:
// a 502 or a timeout ends the call after one attempt, a 503 with Retry-After and a 429 are
// retried. Idempotent (or a GET) retries the 502.
func TestDoRetriesOnlyWhatIsSafe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        turn.DoParams
		answers  []func(http.ResponseWriter, *http.Request)
		opts     []turn.Option
		attempts int
	}{
		{"POST, 502", turn.DoParams{Method: http.MethodPost}, []func(http.ResponseWriter, *http.Request){answer(502, "")}, nil, 1},
		{"POST, a timeout", turn.DoParams{Method: http.MethodPost},
			[]func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
			[]turn.Option{turn.WithTimeout(time.Second)}, 1},
		{"POST, 503 with Retry-After", turn.DoParams{Method: http.MethodPost},
			[]func(http.ResponseWriter, *http.Request){answer(503, "", "Retry-After", "1"), answer(200, "{}")}, nil, 2},
		{"POST, 429", turn.DoParams{Method: http.MethodPost},
			[]func(http.ResponseWriter, *http.Request){answer(429, ""), answer(200, "{}")}, nil, 2},
		{"idempotent POST, 502", turn.DoParams{Method: http.MethodPost, Idempotent: true},
			[]func(http.ResponseWriter, *http.Request){answer(502, ""), answer(200, "{}")}, nil, 2},
		{"GET, 502", turn.DoParams{}, []func(http.ResponseWriter, *http.Request){answer(502, ""), answer(200, "{}")}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &doServer{answers: tc.answers}
				c := doClient(t, srv, tc.opts...)
				tc.p.Name, tc.p.Path = "Mutate", "zones"
				var seen []*turn.Response
				err := c.Do(context.Background(), tc.p, classify(&seen))
				if n := len(srv.sent()); n != tc.attempts {
					t.Errorf("%d requests sent (%v), want %d", n, err, tc.attempts)
				}
				if tc.attempts > 1 && err != nil {
					t.Errorf("Do: %v, want the retry to succeed", err)
				}
			})
		})
	}
}

// Without an API token, or with arguments Do cannot send, nothing is sent.
func TestDoRefusesBeforeSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &doServer{answers: []func(http.ResponseWriter, *http.Request){answer(200, "{}")}}
		url, tr := serveInBubble(t, srv)
		noToken, err := turn.NewClient(turn.WithGetenv(nil), turn.WithBaseURL(url+prefix+"/client/v4"), turn.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		ok := func(*turn.Response) error { return nil }
		err = noToken.Do(context.Background(), turn.DoParams{Name: "UsageTotal", Method: http.MethodPost, Path: "graphql", Body: []byte("{}")}, ok)
		if !errors.Is(err, turn.ErrNoAPIToken) || err.Error() != "turn: UsageTotal: no API token: pass turn.WithAPIToken or set CLOUDFLARE_API_TOKEN" {
			t.Errorf("without a token: %v, want ErrNoAPIToken naming the call and CLOUDFLARE_API_TOKEN", err)
		}

		c := doClient(t, srv)
		for _, tc := range []struct {
			name, method, path string
			check              func(*turn.Response) error
			want               string
		}{
			{"", "POST", "graphql", ok, "name"},
			{"Q", "POST", "/graphql", ok, "relative to the API root"},
			{"Q", "POST", "", ok, "relative to the API root"},
			{"Q", "POST", "https://elsewhere.example/graphql", ok, "not a path below the API root"},
			{"Q", "POST", "a/../../accounts", ok, "climbs out of the API root"},
			{"Q", "POST", "a/%2e%2e/b", ok, "climbs out of the API root"},
			{"Q", "POST", "graph ql", ok, "not a path below the API root"},
			{"Q", "PO ST", "graphql", ok, "not an HTTP method"},
			{"POST", "UsageTotal", "graphql", ok, "not an HTTP method"}, // the name and method swapped
			{"Q", "POST", "graphql#top", ok, "not a path below the API root"},
			{"Q", "POST", "graphql", nil, "check function"},
			{"Q", "POST", "accounts/" + testToken + "/../x", ok, "looks like a credential"},
		} {
			err := c.Do(context.Background(), turn.DoParams{Name: tc.name, Method: tc.method, Path: tc.path}, tc.check)
			if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Do(%q, %q, %q): %v, want ErrInvalidArgument saying %q", tc.name, tc.method, tc.path, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("Do(%q): the error echoes a credential-like path: %v", tc.path, err)
			}
		}
		if n := len(srv.sent()); n != 0 {
			t.Errorf("%d requests sent, want none", n)
		}
	})
}

// A body over the size cap never reaches check: Do fails with the client's own error.
func TestDoBodyOverCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &doServer{answers: []func(http.ResponseWriter, *http.Request){answer(200, strings.Repeat("x", 2048))}}
		c := doClient(t, srv, turn.WithMaxResponseBytes(1024))
		called := false
		err := c.Do(context.Background(), turn.DoParams{Name: "Big", Path: "big"}, func(*turn.Response) error { called = true; return nil })
		var apiErr *turn.APIError
		if !errors.Is(err, turn.ErrUnexpectedResponse) || !errors.As(err, &apiErr) || apiErr.Path != "/big" || !strings.Contains(err.Error(), "1024-byte limit") {
			t.Errorf("Do: %v, want an *APIError for the body over the cap", err)
		}
		if called {
			t.Error("check was handed a body over the cap")
		}
	})
}

// One debug record per attempt, as for the client's own calls: the call's name, method, path
// without its query, status, attempt and cf-ray, and check's error; never the token.
func TestDoDebugLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		srv := &doServer{answers: []func(http.ResponseWriter, *http.Request){
			answer(503, "", "Cf-Ray", "8f1e2d3c4b5a6978-SJC"),
			answer(200, `{"token":"`+testToken+`"}`, "Cf-Ray", "8f1e2d3c4b5a6979-SJC"),
		}}
		c := doClient(t, srv, turn.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
		var seen []*turn.Response
		if err := c.Do(context.Background(), turn.DoParams{Name: "UsageTotal", Method: http.MethodPost, Path: "graphql?secret-query", Body: []byte("{}"), Idempotent: true}, classify(&seen)); err != nil {
			t.Fatal(err)
		}
		var want []map[string]any
		for i, status := range []int{503, 200} {
			want = append(want, map[string]any{"msg": "turn: attempt", "level": "DEBUG", "op": "UsageTotal", "method": "POST", "path": "/graphql",
				"attempt": float64(i + 1), "status": float64(status), "cf_ray": []string{"8f1e2d3c4b5a6978-SJC", "8f1e2d3c4b5a6979-SJC"}[i],
				"error": []any{"503: turn: server error", nil}[i]})
		}
		checkAttemptRecords(t, logs.String(), want)
		if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), "secret-query") {
			t.Errorf("the records hold the token or the query: %s", logs.String())
		}
	})
}
