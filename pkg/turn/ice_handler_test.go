package turn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

type iceEnv struct {
	*env
	key     turn.KeyWithSecret
	handler *turn.ICEHandler
	srv     *httptest.Server
}

// iceSetup serves an ICEHandler, minting from the fake, on a loopback server. The caller identity
// is the X-User header.
func iceSetup(t *testing.T, cfg turn.ICEHandlerConfig) *iceEnv {
	t.Helper()
	e := setup(t)
	key, err := e.client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "ice-handler"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client, cfg.KeyID, cfg.KeySecret = e.client, key.ID, key.Secret
	if cfg.Identity == nil {
		cfg.Identity = func(r *http.Request) string { return r.Header.Get("X-User") }
	}
	h, err := turn.NewICEHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &iceEnv{env: e, key: key, handler: h, srv: srv}
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

func (ie *iceEnv) get(t *testing.T, method, user string, header map[string]string) iceAnswer {
	t.Helper()
	req, _ := http.NewRequest(method, ie.srv.URL+"/ice", nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := iceAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	json.Unmarshal(b, &a.parsed)
	return a
}

func TestICEHandlerServesAndCaches(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{TTL: time.Hour})
	a := ie.get(t, "GET", "alice", nil)
	if a.status != 200 || len(a.parsed.ICEServers) != 2 || a.parsed.ICEServers[1].Credential == "" {
		t.Fatalf("GET: %d %s", a.status, a.body)
	}
	if d := time.Until(time.Unix(a.parsed.ExpiresAt, 0)); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("expiresAt is %v away, want about an hour", d)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Error("credentials may be cached by proxies")
	}
	b := ie.get(t, "POST", "alice", nil)
	if b.parsed.ICEServers[1].Username != a.parsed.ICEServers[1].Username {
		t.Error("a returning caller got a new credential")
	}
	c := ie.get(t, "GET", "bob", nil)
	if c.parsed.ICEServers[1].Username == a.parsed.ICEServers[1].Username {
		t.Error("two identities share a credential")
	}
	if st := ie.handler.Stats(); st.UpstreamCalls != 2 || st.CacheHits != 1 {
		t.Errorf("stats %+v, want 2 upstream calls and 1 hit", st)
	}
	if n := ie.fake.Requests()["generateIceServers"]; n != 2 {
		t.Errorf("fake saw %d generate calls", n)
	}
}

func TestICEHandlerSingleFlight(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{RatePerMinute: -1})
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 300 * time.Millisecond})
	const n = 50
	var wg sync.WaitGroup
	usernames := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := ie.get(t, "GET", "same-user", nil)
			if a.status == 200 {
				usernames[i] = a.parsed.ICEServers[1].Username
			}
		}()
	}
	wg.Wait()
	for i, u := range usernames {
		if u == "" || u != usernames[0] {
			t.Fatalf("request %d got %q, request 0 got %q", i, u, usernames[0])
		}
	}
	if got := ie.fake.Requests()["generateIceServers"]; got != 1 {
		t.Errorf("%d concurrent requests made %d upstream calls, want 1", n, got)
	}
}

func TestICEHandlerRefreshesAfterFraction(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{TTL: 2 * time.Second, RefreshFraction: 0.25})
	first := ie.get(t, "GET", "u", nil).parsed.ICEServers[1].Username
	if again := ie.get(t, "GET", "u", nil).parsed.ICEServers[1].Username; again != first {
		t.Fatal("refreshed too early")
	}
	time.Sleep(600 * time.Millisecond) // past 0.25 × 2s
	if later := ie.get(t, "GET", "u", nil).parsed.ICEServers[1].Username; later == first {
		t.Error("not refreshed after RefreshFraction of the TTL")
	}
	if st := ie.handler.Stats(); st.UpstreamCalls != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestICEHandlerRateLimit(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{RatePerMinute: 6, Burst: 2})
	for i := range 2 {
		if a := ie.get(t, "GET", "greedy", nil); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := ie.get(t, "GET", "greedy", nil)
	if a.status != 429 || a.header.Get("Retry-After") == "" || a.parsed.Error == "" {
		t.Fatalf("over the burst: %d %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	if ie.get(t, "GET", "patient", nil).status != 200 {
		t.Error("one identity's limit hit another")
	}
}

func TestICEHandlerCORS(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{AllowedOrigins: []string{"https://app.example"}})
	a := ie.get(t, "OPTIONS", "u", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
	if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(a.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", a.status, a.header)
	}
	if a := ie.get(t, "GET", "u", map[string]string{"Origin": "https://app.example"}); a.status != 200 || a.header.Get("Vary") != "Origin" {
		t.Errorf("allowed origin: %d %v", a.status, a.header)
	}
	a = ie.get(t, "GET", "u", map[string]string{"Origin": "https://evil.example"})
	if a.status != 403 || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin: %d %v", a.status, a.header)
	}
	if a := ie.get(t, "DELETE", "u", nil); a.status != 405 || a.header.Get("Allow") == "" {
		t.Errorf("DELETE: %d", a.status)
	}
	if ie.fake.Requests()["generateIceServers"] != 1 {
		t.Error("refused requests reached upstream")
	}
}

func TestICEHandlerAuthorizeAndIdentity(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{Authorize: func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer app-session" {
			return errors.New("no session")
		}
		return nil
	}})
	if a := ie.get(t, "GET", "u", nil); a.status != 403 || strings.Contains(a.body, "no session") {
		t.Errorf("unauthorised: %d %s", a.status, a.body)
	}
	if a := ie.get(t, "GET", "", map[string]string{"Authorization": "Bearer app-session"}); a.status != 400 {
		t.Errorf("no identity: %d", a.status)
	}
	if a := ie.get(t, "GET", "u", map[string]string{"Authorization": "Bearer app-session"}); a.status != 200 {
		t.Errorf("authorised: %d %s", a.status, a.body)
	}
	if n := ie.fake.Requests()["generateIceServers"]; n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

func TestICEHandlerUpstreamFaults(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{})
	ie.contract.RequestsOnly = true // the faults break the response contract on purpose
	for _, tc := range []struct {
		fault  turntest.Fault
		status int
	}{
		{turntest.Fault{Status: 401}, 502},
		{turntest.Fault{Status: 500, Count: 10}, 502},
		{turntest.Fault{Status: 429, Count: 10}, 503},
		{turntest.Fault{Body: turntest.BodyHTML, Count: 10}, 502},
	} {
		ie.fake.ClearFaults()
		tc.fault.Operation = "generateIceServers"
		ie.fake.InjectFault(tc.fault)
		a := ie.get(t, "GET", fmt.Sprint("user-", tc.fault.Status, tc.fault.Body), nil)
		if a.status != tc.status || a.parsed.Error == "" {
			t.Errorf("%+v: %d %s, want %d with a JSON error", tc.fault, a.status, a.body, tc.status)
		}
		if tc.status == 503 && a.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		for _, s := range []string{ie.key.Secret.Reveal(), ie.fake.Token()} {
			if strings.Contains(a.body, s) {
				t.Fatal("a secret reached the browser")
			}
		}
	}
}

func TestICEHandlerBoundedIdentities(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{MaxIdentities: 10})
	for i := range 100 {
		if a := ie.get(t, "GET", fmt.Sprint("caller-", i), nil); a.status != 200 {
			t.Fatalf("caller %d: %d", i, a.status)
		}
	}
	if st := ie.handler.Stats(); st.Identities != 10 {
		t.Errorf("%d identities remembered, want 10", st.Identities)
	}
}

func TestNewICEHandlerValidates(t *testing.T) {
	c, _ := turn.NewClient(turn.WithGetenv(nil))
	secret := turn.NewSecret("s")
	for _, cfg := range []turn.ICEHandlerConfig{
		{KeyID: testKeyID, KeySecret: secret},
		{Client: c, KeyID: "x", KeySecret: secret},
		{Client: c, KeyID: testKeyID},
		{Client: c, KeyID: testKeyID, KeySecret: secret, TTL: 1500 * time.Millisecond},
		{Client: c, KeyID: testKeyID, KeySecret: secret, RefreshFraction: 2},
		{Client: c, KeyID: testKeyID, KeySecret: secret, MaxInFlight: -1},
	} {
		if _, err := turn.NewICEHandler(cfg); !errors.Is(err, turn.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

// Upstream calls in flight never exceed MaxInFlight, and a caller who cannot get a slot within
// RequestTimeout gets 503 with Retry-After.
func TestICEHandlerBoundsUpstreamCalls(t *testing.T) {
	ie := iceSetup(t, turn.ICEHandlerConfig{MaxInFlight: 2, RequestTimeout: 2 * time.Second, RatePerMinute: -1})
	var mu sync.Mutex
	var now, peak int
	base := ie.contract.Base
	ie.contract.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		now++
		peak = max(peak, now)
		mu.Unlock()
		defer func() { mu.Lock(); now--; mu.Unlock() }()
		return base.RoundTrip(r)
	})
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 100 * time.Millisecond, Count: 100})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := ie.get(t, "GET", fmt.Sprint("caller-", i), nil); a.status != 200 {
				t.Errorf("caller %d: %d %s", i, a.status, a.body)
			}
		}()
	}
	wg.Wait()
	if peak > 2 || peak == 0 {
		t.Errorf("%d upstream calls in flight at once, want at most MaxInFlight (2)", peak)
	}

	slow := iceSetup(t, turn.ICEHandlerConfig{MaxInFlight: 1, RequestTimeout: 200 * time.Millisecond, RatePerMinute: -1})
	slow.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: time.Second, Count: 10})
	a := slow.get(t, "GET", "waits-too-long", nil)
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("upstream slower than RequestTimeout: %d %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
}
