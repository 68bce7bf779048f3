package iceserve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// fakeClock is the handler's injected clock: it moves only when a test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type iceEnv struct {
	*env
	key     turn.KeyWithSecret
	handler *iceserve.Handler
	srv     *httptest.Server
	clock   *fakeClock
	logs    *syncbuf.Buffer
}

// iceSetup serves a Handler, minting from the fake, on a loopback server, with an injected
// clock and a debug logger. The caller identity is the X-User header.
func iceSetup(t *testing.T, cfg iceserve.Config) *iceEnv {
	t.Helper()
	// The older URL set, with port-53 URLs, so that what the handler filters is there to filter.
	e := setupFake(t, turntest.New(turntest.WithLegacyICEURLs()))
	key, err := e.client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "ice-handler"})
	if err != nil {
		t.Fatal(err)
	}
	clock, logs := newClock(), &syncbuf.Buffer{}
	cfg.Client, cfg.KeyID, cfg.KeySecret = e.client, key.ID, key.Secret
	if cfg.Identity == nil && cfg.IdentityHeader == "" {
		cfg.IdentityHeader = "X-User"
	}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := iceserve.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ie := &iceEnv{env: e, key: key, handler: h, srv: srv, clock: clock, logs: logs}
	t.Cleanup(func() { ie.checkNoSecrets(t, logs.String()) })
	return ie
}

// mints is how many generate calls reached the fake.
func (ie *iceEnv) mints() int { return ie.fake.Requests()["generateIceServers"] }

// checkNoSecrets fails when s holds the key's secret or the fake's token.
func (ie *iceEnv) checkNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{ie.key.Secret.Reveal(), ie.fake.Token()} {
		if strings.Contains(s, secret) {
			t.Errorf("a secret leaked into %.200q", s)
		}
	}
}

type iceAnswer struct {
	status int
	header http.Header
	body   string
	parsed struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"iceServers"`
		ExpiresAt int64  `json:"expiresAt"`
		Error     string `json:"error"`
	}
}

// username is the TURN username of the answer, or "".
func (a iceAnswer) username() string {
	for _, s := range a.parsed.ICEServers {
		if s.Username != "" {
			return s.Username
		}
	}
	return ""
}

func (ie *iceEnv) get(t *testing.T, method, user string, header map[string]string) iceAnswer {
	t.Helper()
	a, err := ie.do(context.Background(), method, user, header)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (ie *iceEnv) do(ctx context.Context, method, user string, header map[string]string) (iceAnswer, error) {
	req, _ := http.NewRequestWithContext(ctx, method, ie.srv.URL+"/ice", nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ie.srv.Client().Do(req)
	if err != nil {
		return iceAnswer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := iceAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	json.Unmarshal(b, &a.parsed)
	return a, nil
}

// parallel runs n requests at once, one identity each (prefix-i), and returns their statuses.
func (ie *iceEnv) parallel(t *testing.T, n int, prefix string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := ie.do(context.Background(), "GET", fmt.Sprint(prefix, i), nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}

func TestHandlerServesAndCaches(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{TTL: time.Hour})
	a := ie.get(t, "GET", "alice", nil)
	if a.status != 200 || len(a.parsed.ICEServers) != 2 || a.parsed.ICEServers[1].Credential == "" {
		t.Fatalf("GET: %d %s", a.status, a.body)
	}
	if want := ie.clock.Now().Add(time.Hour).Unix(); a.parsed.ExpiresAt != want {
		t.Errorf("expiresAt %d, want %d (sent + TTL)", a.parsed.ExpiresAt, want)
	}
	if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", a.header)
	}
	b := ie.get(t, "POST", "alice", nil)
	if b.body != a.body {
		t.Error("a returning caller got a different answer")
	}
	c := ie.get(t, "GET", "bob", nil)
	if c.username() == a.username() {
		t.Error("two identities share a credential")
	}
	if st := ie.handler.Stats(); st.UpstreamCalls != 2 || st.CacheHits != 1 || st.Identities != 2 || st.Callers != 2 {
		t.Errorf("stats %+v, want 2 upstream calls, 1 hit, 2 identities and callers", st)
	}
	if n := ie.mints(); n != 2 {
		t.Errorf("fake saw %d generate calls", n)
	}
	if err := ie.handler.Ready(context.Background()); err != nil {
		t.Errorf("Ready after successful mints: %v", err)
	}
}

func TestHandlerSingleFlight(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{RatePerMinute: -1})
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 300 * time.Millisecond})
	const n = 50
	var wg sync.WaitGroup
	usernames := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a, err := ie.do(context.Background(), "GET", "same-user", nil); err == nil {
				usernames[i] = a.username()
			}
		}()
	}
	wg.Wait()
	for i, u := range usernames {
		if u == "" || u != usernames[0] {
			t.Fatalf("request %d got %q, request 0 got %q", i, u, usernames[0])
		}
	}
	if got := ie.mints(); got != 1 {
		t.Errorf("%d concurrent requests made %d upstream calls, want 1", n, got)
	}
}

func TestHandlerRateLimit(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{RatePerMinute: 6, Burst: 2})
	for i := range 2 {
		if a := ie.get(t, "GET", "greedy", nil); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := ie.get(t, "GET", "greedy", nil)
	if a.status != 429 || a.header.Get("Retry-After") != "10" || a.parsed.Error == "" {
		t.Fatalf("over the burst: %d %q %s, want 429 after 10s (6/min)", a.status, a.header.Get("Retry-After"), a.body)
	}
	if ie.get(t, "GET", "patient", nil).status != 200 {
		t.Error("one identity's limit hit another")
	}
	ie.clock.Advance(10 * time.Second)
	if a := ie.get(t, "GET", "greedy", nil); a.status != 200 {
		t.Errorf("after the refill: %d", a.status)
	}
	if st := ie.handler.Stats(); st.Refused["rate_limited"] != 1 {
		t.Errorf("refusals %v", st.Refused)
	}
}

// Item 10: configuration is checked before anything is served.
func TestNewHandlerValidates(t *testing.T) {
	c, _ := turn.NewClient(turn.WithGetenv(nil))
	secret := turn.NewSecret(strings.Repeat("s", 64))
	ok := iceserve.Config{Client: c, KeyID: testKeyID, KeySecret: secret}
	for name, change := range map[string]func(*iceserve.Config){
		"no client":                   func(c *iceserve.Config) { c.Client = nil },
		"bad key ID":                  func(c *iceserve.Config) { c.KeyID = "x" },
		"no secret":                   func(c *iceserve.Config) { c.KeySecret = turn.Secret{} },
		"fractional TTL":              func(c *iceserve.Config) { c.TTL = 1500 * time.Millisecond },
		"TTL over 48h":                func(c *iceserve.Config) { c.TTL = 49 * time.Hour },
		"negative TTL":                func(c *iceserve.Config) { c.TTL = -time.Hour },
		"refresh fraction 2":          func(c *iceserve.Config) { c.RefreshFraction = 2 },
		"refresh fraction NaN":        func(c *iceserve.Config) { c.RefreshFraction = math.NaN() },
		"rate NaN":                    func(c *iceserve.Config) { c.RatePerMinute = math.NaN() },
		"rate 1e-9":                   func(c *iceserve.Config) { c.RatePerMinute = 1e-9 },
		"rate +Inf":                   func(c *iceserve.Config) { c.RatePerMinute = math.Inf(1) },
		"rate -Inf":                   func(c *iceserve.Config) { c.RatePerMinute = math.Inf(-1) },
		"mint rate NaN":               func(c *iceserve.Config) { c.MintsPerSecond = math.NaN() },
		"mint rate negative":          func(c *iceserve.Config) { c.MintsPerSecond = -1 },
		"negative in flight":          func(c *iceserve.Config) { c.MaxInFlight = -1 },
		"network share 2":             func(c *iceserve.Config) { c.NetworkShare = 2 },
		"network share NaN":           func(c *iceserve.Config) { c.NetworkShare = math.NaN() },
		"network share negative":      func(c *iceserve.Config) { c.NetworkShare = -0.5 },
		"negative burst":              func(c *iceserve.Config) { c.Burst = -1 },
		"negative timeout":            func(c *iceserve.Config) { c.RequestTimeout = -time.Second },
		"min remaining over TTL":      func(c *iceserve.Config) { c.MinRemaining = 25 * time.Hour },
		"origin with a slash":         func(c *iceserve.Config) { c.AllowedOrigins = []string{"http://localhost:3000/"} },
		"origin with a path":          func(c *iceserve.Config) { c.AllowedOrigins = []string{"https://app.example/ice"} },
		"origin in upper case":        func(c *iceserve.Config) { c.AllowedOrigins = []string{"https://App.example"} },
		"origin without scheme":       func(c *iceserve.Config) { c.AllowedOrigins = []string{"app.example"} },
		"credentials with any origin": func(c *iceserve.Config) { c.AllowCredentials, c.AllowedOrigins = true, []string{"*"} },
	} {
		cfg := ok
		change(&cfg)
		_, err := iceserve.NewHandler(cfg)
		if !errors.Is(err, turn.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := iceserve.NewHandler(ok); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
	cfg := ok
	cfg.AllowedOrigins = []string{"http://localhost:3000/"}
	if _, err := iceserve.NewHandler(cfg); err == nil || !strings.Contains(err.Error(), `"http://localhost:3000"`) {
		t.Errorf("the error does not say which origin to use: %v", err)
	}
}

// The zero config limits each identity as documented: DefaultICEBurst at once, then one request
// per 60/DefaultICERatePerMinute seconds.
func TestHandlerDefaultLimits(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	for i := range iceserve.DefaultBurst {
		if a := ie.get(t, "GET", "u", nil); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := ie.get(t, "GET", "u", nil)
	if want := fmt.Sprint(60 / iceserve.DefaultRatePerMinute); a.status != 429 || a.header.Get("Retry-After") != want {
		t.Errorf("after the default burst: %d Retry-After %q, want 429 and %s", a.status, a.header.Get("Retry-After"), want)
	}
	if iceserve.DefaultMintsPerSecond >= 500 {
		t.Error("the default mint budget is not below Cloudflare's suggested starting rate of 500/s")
	}
}

// An answer is a line of its own (curl's output does not run into the prompt), and a request
// without the identity header is told which header was expected.
func TestHandlerAnswerShape(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	a := ie.get(t, "GET", "alice", nil)
	if a.status != 200 || !strings.HasSuffix(a.body, "}\n") || strings.Count(a.body, "\n") != 1 {
		t.Errorf("answer %d %q: want 200 and one JSON line ending in a newline", a.status, a.body)
	}
	if again := ie.get(t, "GET", "alice", nil); again.body != a.body {
		t.Errorf("a cache hit answered %q, the mint %q", again.body, a.body)
	}
	a = ie.get(t, "GET", "", nil)
	if a.status != 400 || !strings.Contains(a.parsed.Error, "X-User header is missing") {
		t.Errorf("without X-User: %d %q; want 400 naming the header", a.status, a.parsed.Error)
	}
}

// A request with two Origin headers (no browser sends that) is refused, and no origin is echoed.
func TestHandlerTwoOrigins(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{AllowedOrigins: []string{"https://app.example.com"}, AllowCredentials: true})
	req, _ := http.NewRequest("POST", ie.srv.URL, nil)
	req.Header.Set("X-User", "alice")
	req.Header["Origin"] = []string{"https://app.example.com", "https://evil.example"}
	resp, err := ie.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Header.Values("Access-Control-Allow-Origin")) != 0 || ie.mints() != 0 {
		t.Errorf("two Origins: %d, Allow-Origin %q, %d mints; want 403, none, none", resp.StatusCode, resp.Header.Values("Access-Control-Allow-Origin"), ie.mints())
	}
}
