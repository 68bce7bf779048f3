package iceserve_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// homeserver is a test homeserver implementing whoami over a token table the test changes.
type homeserver struct {
	*httptest.Server
	mu     sync.Mutex
	tokens map[string]string // token -> user ID
	asked  atomic.Int64
	reply  http.HandlerFunc // when set, answers instead of the table
}

func newHomeserver(t *testing.T) *homeserver {
	t.Helper()
	hs := &homeserver{tokens: map[string]string{"tok-alice": "@alice:example.org"}}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.asked.Add(1)
		hs.mu.Lock()
		reply := hs.reply
		user, ok := hs.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		hs.mu.Unlock()
		if reply != nil {
			reply(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/_matrix/client/v3/account/whoami" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`))
			return
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}`))
			return
		}
		w.Write([]byte(`{"user_id":"` + user + `","is_guest":false,"device_id":"DEV"}`))
	}))
	t.Cleanup(hs.Close)
	return hs
}

func (hs *homeserver) revoke(token string) {
	hs.mu.Lock()
	delete(hs.tokens, token)
	hs.mu.Unlock()
}

func (hs *homeserver) answer(h http.HandlerFunc) {
	hs.mu.Lock()
	hs.reply = h
	hs.mu.Unlock()
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func verifier(t *testing.T, cfg iceserve.MatrixConfig) *iceserve.MatrixVerifier {
	t.Helper()
	v, err := iceserve.NewMatrixVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatrixVerifyCachesWithinItsBound(t *testing.T) {
	hs := newHomeserver(t)
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	v := verifier(t, iceserve.MatrixConfig{Homeserver: hs.URL, CacheTTL: 30 * time.Second, Now: clk.Now})
	ctx := context.Background()
	for range 3 {
		user, err := v.Verify(ctx, "tok-alice")
		if err != nil || user != "@alice:example.org" {
			t.Fatalf("Verify = %q, %v; want @alice:example.org", user, err)
		}
	}
	if n := hs.asked.Load(); n != 1 {
		t.Errorf("the homeserver was asked %d times for one token, want 1", n)
	}
	// Revoked at the homeserver: still trusted until CacheTTL after it was asked, not after.
	hs.revoke("tok-alice")
	clk.step(30*time.Second - time.Nanosecond)
	if _, err := v.Verify(ctx, "tok-alice"); err != nil {
		t.Errorf("within the cache bound: %v", err)
	}
	clk.step(time.Nanosecond)
	if _, err := v.Verify(ctx, "tok-alice"); !errors.Is(err, iceserve.ErrMatrixUnknownToken) {
		t.Errorf("CacheTTL after the check: %v, want ErrMatrixUnknownToken", err)
	}
	// An unknown token is never cached: each use asks again.
	v.Verify(ctx, "tok-alice")
	if n := hs.asked.Load(); n != 3 {
		t.Errorf("the homeserver was asked %d times, want 3", n)
	}
	st := v.Stats()
	if st.Lookups != 3 || st.CacheHits != 3 || st.UnknownToken != 2 {
		t.Errorf("stats %+v, want 3 lookups, 3 hits, 2 unknown", st)
	}
}

func TestMatrixVerifyHomeserverTrouble(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply http.HandlerFunc
		want  error
		why   string
	}{
		{"forbidden", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"deactivated"}`))
		}, iceserve.ErrMatrixForbidden, ""},
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>502 Bad Gateway</html>", http.StatusBadGateway)
		}, iceserve.ErrMatrixUnavailable, "status 502"},
		{"HTML with 200", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>welcome to nginx</html>"))
		}, iceserve.ErrMatrixUnavailable, "not a whoami answer"},
		{"user_id not a string", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"user_id":5}`))
		}, iceserve.ErrMatrixUnavailable, "not a whoami answer"},
		{"user_id not a Matrix ID", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"user_id":"alice"}`))
		}, iceserve.ErrMatrixUnavailable, "not a whoami answer"},
		{"no user_id", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{}`))
		}, iceserve.ErrMatrixUnavailable, "not a whoami answer"},
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"user_id":"@a:b","pad":"` + strings.Repeat("x", 1<<20) + `"}`))
		}, iceserve.ErrMatrixUnavailable, "answer over 16384 bytes"},
		{"rate limited", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}`))
		}, iceserve.ErrMatrixUnavailable, "rate limited"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/steal", http.StatusFound)
		}, iceserve.ErrMatrixUnavailable, "status 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHomeserver(t)
			hs.answer(tc.reply)
			v := verifier(t, iceserve.MatrixConfig{Homeserver: hs.URL})
			user, err := v.Verify(context.Background(), "tok-alice")
			if !errors.Is(err, tc.want) || user != "" {
				t.Fatalf("Verify = %q, %v; want %v", user, err, tc.want)
			}
			if tc.why != "" && !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
			if strings.Contains(err.Error(), "tok-alice") {
				t.Errorf("the token is in the error: %v", err)
			}
			var u *iceserve.MatrixUnavailableError
			if tc.name == "rate limited" && (!errors.As(err, &u) || u.RetryAfter != 2500*time.Millisecond) {
				t.Errorf("rate limited: %#v, want RetryAfter 2.5s from retry_after_ms", err)
			}
		})
	}
}

func TestMatrixVerifyDownOrSlowHomeserver(t *testing.T) {
	hs := newHomeserver(t)
	url := hs.URL
	hs.Close()
	v := verifier(t, iceserve.MatrixConfig{Homeserver: url})
	if _, err := v.Verify(context.Background(), "tok-alice"); !errors.Is(err, iceserve.ErrMatrixUnavailable) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("homeserver down: %v, want ErrMatrixUnavailable (unreachable)", err)
	}

	// A homeserver that sends headers and then nothing, or nothing at all: Timeout bounds both.
	release := make(chan struct{})
	defer close(release)
	for _, name := range []string{"no headers", "headers, no body"} {
		slow := newHomeserver(t)
		slow.answer(func(w http.ResponseWriter, r *http.Request) {
			if name == "headers, no body" {
				w.WriteHeader(http.StatusOK)
				w.Write([]byte(`{"user_id":`))
				w.(http.Flusher).Flush()
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		v := verifier(t, iceserve.MatrixConfig{Homeserver: slow.URL, Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := v.Verify(context.Background(), "tok-alice")
		if took := time.Since(start); !errors.Is(err, iceserve.ErrMatrixUnavailable) || !strings.Contains(err.Error(), "timeout") || took > 5*time.Second {
			t.Errorf("%s: %v after %v, want a timeout after about 200ms", name, err, took)
		}
	}
}

// Made-up tokens cannot hammer the homeserver: past the lookup budget they are refused here.
func TestMatrixLookupBudget(t *testing.T) {
	hs := newHomeserver(t)
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	v := verifier(t, iceserve.MatrixConfig{Homeserver: hs.URL, LookupsPerSecond: 1, LookupBurst: 2, Now: clk.Now})
	ctx := context.Background()
	for i, want := range []error{iceserve.ErrMatrixUnknownToken, iceserve.ErrMatrixUnknownToken, iceserve.ErrMatrixUnavailable} {
		if _, err := v.Verify(ctx, "made-up-"+string(rune('a'+i))); !errors.Is(err, want) {
			t.Errorf("lookup %d: %v, want %v", i+1, err, want)
		}
	}
	if n := hs.asked.Load(); n != 2 {
		t.Errorf("the homeserver was asked %d times, want 2", n)
	}
	clk.step(time.Second)
	if _, err := v.Verify(ctx, "tok-alice"); err != nil {
		t.Errorf("a second later: %v", err)
	}
	// Tokens that cannot be real never reach the homeserver, budget or not.
	for _, tok := range []string{"", "a\x00b", strings.Repeat("t", 5000)} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, iceserve.ErrMatrixUnknownToken) {
			t.Errorf("token %.10q: %v, want ErrMatrixUnknownToken", tok, err)
		}
	}
	if n := hs.asked.Load(); n != 3 {
		t.Errorf("the homeserver was asked %d times, want 3", n)
	}
}

func TestMatrixCacheIsBounded(t *testing.T) {
	hs := newHomeserver(t)
	hs.answer(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"user_id":"@` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `:example.org"}`))
	})
	v := verifier(t, iceserve.MatrixConfig{Homeserver: hs.URL, MaxCached: 3})
	ctx := context.Background()
	for _, tok := range []string{"a", "b", "c", "d", "e"} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Stats().Cached; n != 3 {
		t.Errorf("%d tokens cached, want MaxCached = 3", n)
	}
	v.Verify(ctx, "e") // the newest stayed
	v.Verify(ctx, "a") // the oldest went
	if n := hs.asked.Load(); n != 6 {
		t.Errorf("the homeserver was asked %d times, want 6", n)
	}
}

func TestMatrixRefusal(t *testing.T) {
	for _, tc := range []struct {
		err     error
		status  int
		errcode string
	}{
		{iceserve.ErrMatrixUnknownToken, 401, "M_UNKNOWN_TOKEN"},
		{iceserve.ErrMatrixForbidden, 403, "M_FORBIDDEN"},
		{&iceserve.MatrixUnavailableError{Reason: "timeout", RetryAfter: 5 * time.Second}, 503, "M_UNKNOWN"},
		{context.DeadlineExceeded, 503, "M_UNKNOWN"},
	} {
		status, body, _ := iceserve.MatrixRefusal(tc.err)
		if status != tc.status || body.Errcode != tc.errcode || body.Error == "" {
			t.Errorf("%v: %d %+v, want %d %s", tc.err, status, body, tc.status, tc.errcode)
		}
	}
}

func TestNewMatrixVerifierRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  iceserve.MatrixConfig
		want string
	}{
		{iceserve.MatrixConfig{}, "no homeserver URL"},
		{iceserve.MatrixConfig{Homeserver: "matrix.example.org"}, "must be http(s)://"},
		{iceserve.MatrixConfig{Homeserver: "https://admin:hunter2@matrix.example.org"}, "[REDACTED]@matrix.example.org"},
		{iceserve.MatrixConfig{Homeserver: "https://matrix.example.org/?x=1"}, "without user, query or fragment"},
		{iceserve.MatrixConfig{Homeserver: "https://m.example.org", CacheTTL: time.Hour}, "CacheTTL 1h0m0s"},
		{iceserve.MatrixConfig{Homeserver: "https://m.example.org", MaxCached: -1}, "must be positive"},
	} {
		_, err := iceserve.NewMatrixVerifier(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg.Homeserver, err, tc.want)
		}
	}
	if iceserve.DefaultMatrixCacheTTL != 30*time.Second || iceserve.DefaultMatrixTimeout != 5*time.Second {
		t.Error("the documented defaults (30s cache, 5s timeout) changed: update MatrixConfig's doc")
	}
}
