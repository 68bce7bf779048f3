package iceserve_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Cases from the second attack review of the credential endpoint (issue 16).

func isGenerate(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/generate-ice-servers") }

// holdGenerate makes generate calls wait until release is closed (or their request ends); the
// other calls go through.
func (ie *iceEnv) holdGenerate(release <-chan struct{}, arrived func()) {
	base := ie.contract.Base
	ie.contract.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if isGenerate(r) {
			if arrived != nil {
				arrived()
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
		return base.RoundTrip(r)
	})
}

// rewriteGenerate lets the fake mint, then replaces the answer's body with change(body).
func (ie *iceEnv) rewriteGenerate(change func(body []byte) []byte) {
	base := ie.contract.Base
	ie.contract.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil || !isGenerate(r) || resp.StatusCode/100 != 2 {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		b = change(b)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	})
}

// Item 1: after one upstream failure, a client requesting the readiness probe and hanging up at
// once, again and again, does not keep new callers at 503; the probe runs once, on its own
// context, and revokes what it minted.
func TestHandlerReadyHangUpsDoNotHoldMintingOff(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 500})
	if a := ie.get(t, "GET", "first", nil); a.status != 502 {
		t.Fatalf("upstream 500: %d", a.status)
	}
	ie.clock.Advance(time.Second) // the backoff has passed: the next readiness check probes
	release := make(chan struct{})
	ie.holdGenerate(release, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ie.handler.Ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	admin := httptest.NewServer(mux)
	defer admin.Close()
	for range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", admin.URL+"/readyz", nil)
		if resp, err := admin.Client().Do(req); err == nil {
			resp.Body.Close()
		}
		cancel()
	}
	close(release)
	if err := ie.handler.Ready(context.Background()); err != nil {
		t.Errorf("Ready once the probe's upstream answered: %v", err)
	}
	st := ie.parallel(t, 20, "new-")
	if st[200] != 20 {
		t.Errorf("new callers after the hang-ups: %v, want 20 × 200", st)
	}
	if n := ie.mints(); n != 2+20 {
		t.Errorf("%d generate calls, want the failure, one probe and the 20 callers' (22)", n)
	}
	if n := ie.fake.Requests()["revokeIceCredential"]; n != 1 {
		t.Errorf("%d revocations, want the probe's one", n)
	}
	s := ie.handler.Stats()
	if s.UpstreamErrors["transport"]+s.UpstreamErrors["timeout"] != 0 || s.UpstreamErrors["server"] != 1 {
		t.Errorf("upstream errors %v, want only the one 500", s.UpstreamErrors)
	}
}

// Item 1: a caller's cancellation never counts as an upstream failure, and concurrent readiness
// checks share one probe.
func TestHandlerConcurrentReadyShareOneProbe(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 500})
	ie.get(t, "GET", "first", nil)
	ie.clock.Advance(time.Second)
	release := make(chan struct{})
	var arrivals atomic.Int32
	ie.holdGenerate(release, func() { arrivals.Add(1) })
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- ie.handler.Ready(context.Background()) }()
	}
	// A caller that gives up gets the last known state at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ie.handler.Ready(ctx); err == nil || !strings.Contains(err.Error(), "server") {
		t.Errorf("Ready with a cancelled context: %v, want the last state (server)", err)
	}
	close(release)
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("Ready: %v", err)
		}
	}
	if n := arrivals.Load(); n != 1 {
		t.Errorf("%d probes reached the upstream, want 1", n)
	}
}

// Item 2: mints that queued for an upstream slot while the upstream still looked healthy are not
// sent once a 429 has tripped the breaker: only those already in flight, then one probe per
// Retry-After window, however many callers queue.
func TestHandlerQueuedMintsRecheckBreaker(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintBurst: 1000, MintsPerSecond: 1000})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 429, RetryAfter: "2", Count: 1000})
	release := make(chan struct{})
	ie.holdGenerate(release, nil)
	// The upstream answers once all 64 callers are in the handler, so most of them queue for
	// the 16 slots behind the first 16.
	var arrived sync.WaitGroup
	arrived.Add(64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		ie.handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	go func() { arrived.Wait(); close(release) }()
	var wg sync.WaitGroup
	var ok503 atomic.Int32
	for i := range 64 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("X-User", fmt.Sprint("storm-", i))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				ok503.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ie.mints(); n > iceserve.DefaultMaxInFlight || ok503.Load() != 64 {
		t.Fatalf("first window: %d upstream calls and %d × 503 for 64 callers, want at most the %d in flight and 64 × 503",
			n, ok503.Load(), iceserve.DefaultMaxInFlight)
	}
	first := ie.mints()
	for window := 1; window <= 3; window++ {
		ie.clock.Advance(2 * time.Second)
		st := ie.parallel(t, 64, fmt.Sprint("window-", window, "-"))
		if want := first + window; st[503] != 64 || ie.mints() != want {
			t.Errorf("window %d: %v and %d upstream calls in all, want 64 × 503 and %d (one probe per window)", window, st, ie.mints(), want)
		}
	}
}

// Item 3: an answer a browser cannot use for TURN is a 502, logged as unexpected_response, and is
// not cached: the next good answer is asked for.
func TestHandlerUnusableAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"only port 53":      `{"iceServers":[{"urls":["stun:stun.example.com:53"]},{"urls":["turn:turn.example.com:53?transport=udp"],"username":"u1","credential":"c1"}]}`,
		"only STUN":         `{"iceServers":[{"urls":["stun:stun.example.com:3478"]}]}`,
		"TURN without user": `{"iceServers":[{"urls":["stun:stun.example.com:3478"]},{"urls":["turn:turn.example.com:3478?transport=udp"]}]}`,
		"empty credential":  `{"iceServers":[{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"u1","credential":""}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			ie := iceSetup(t, iceserve.Config{})
			ie.contract.RequestsOnly = true
			var rewrite atomic.Bool
			rewrite.Store(true)
			ie.rewriteGenerate(func(b []byte) []byte {
				if rewrite.Load() {
					return []byte(body)
				}
				return b
			})
			a := ie.get(t, "GET", "u", nil)
			if a.status != 502 || !strings.Contains(a.parsed.Error, "unexpected_response") {
				t.Errorf("unusable answer: %d %s, want 502 unexpected_response", a.status, a.body)
			}
			if !strings.Contains(ie.logs.String(), "class=unexpected_response") {
				t.Errorf("not logged with its class:\n%s", ie.logs)
			}
			if s := ie.handler.Stats(); s.Identities != 0 || s.UpstreamErrors["unexpected_response"] != 1 {
				t.Errorf("stats %+v, want nothing cached and one unexpected_response", s)
			}
			rewrite.Store(false)
			ie.clock.Advance(time.Second)
			if a := ie.get(t, "GET", "u", nil); a.status != 200 || a.username() == "" || ie.mints() != 2 {
				t.Errorf("the next request: %d %s after %d mints, want a fresh TURN credential", a.status, a.body, ie.mints())
			}
		})
	}
}

// Item 4: a CustomIdentifier value the client would refuse is this request's problem: 400, and
// the breaker, the mint budget, the upstream counters and readiness are untouched.
func TestHandlerBadCustomIdentifierIsLocal(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintBurst: 1, MintsPerSecond: 0.01, CustomIdentifier: func(id string) string {
		switch id {
		case "tab":
			return "a\tb"
		case "utf8":
			return "a\xffb"
		case "long":
			return strings.Repeat("x", turn.MaxCustomIdentifierLen+1)
		}
		return "tag-" + id
	}})
	for _, id := range []string{"tab", "utf8", "long", "tab"} {
		a := ie.get(t, "GET", id, nil)
		if a.status != 400 || !strings.Contains(a.parsed.Error, "customIdentifier") {
			t.Errorf("%s: %d %s, want 400 naming customIdentifier", id, a.status, a.body)
		}
	}
	s := ie.handler.Stats()
	for class, n := range s.UpstreamErrors {
		if n != 0 {
			t.Errorf("upstream errors %s = %d", class, n)
		}
	}
	if s.UpstreamCalls != 0 || ie.mints() != 0 || s.Refused["bad_custom_identifier"] != 4 {
		t.Errorf("stats %+v after %d mints", s, ie.mints())
	}
	if err := ie.handler.Ready(context.Background()); err != nil {
		t.Errorf("not ready after local refusals: %v", err)
	}
	// The one-token budget is still there, and the breaker closed.
	if a := ie.get(t, "GET", "alice", nil); a.status != 200 {
		t.Errorf("a good caller: %d %s", a.status, a.body)
	}
	if got, _ := ie.fake.CustomIdentifier(ie.get(t, "GET", "alice", nil).username()); got != "tag-alice" {
		t.Errorf("customIdentifier %q", got)
	}
}

// Item 10: the identity header must come once: a proxy that appends leaves the browser's value
// first.
func TestHandlerRepeatedIdentityHeader(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	bob := ie.get(t, "GET", "bob", nil)
	if bob.status != 200 {
		t.Fatal(bob.status)
	}
	req, _ := http.NewRequest("GET", ie.srv.URL, nil)
	req.Header.Add("X-User", "bob")     // spoofed by the browser
	req.Header.Add("X-User", "mallory") // appended by the proxy
	resp, err := ie.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || strings.Contains(string(b), bob.username()) || !strings.Contains(string(b), "X-User sent 2 times") {
		t.Errorf("two identity values: %d %s, want 400 saying so", resp.StatusCode, b)
	}
	if s := ie.handler.Stats(); s.Refused["identity_repeated"] != 1 || s.Callers != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Item 15: what is cached per identity is bounded by bytes, however big the upstream's answers:
// 200 identities whose answers carry 32 KiB of unknown fields each (6.4 MiB kept before the
// bound) keep under 1 MiB in all. The bound is per answer, so the pad's size does not change it:
// with 1 MiB pads (slow under -race) the heap grew by about 300 KiB too.
func TestHandlerCacheBoundedByBytes(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintBurst: 1000, MintsPerSecond: 1000})
	ie.contract.RequestsOnly = true // the padded answers are the point
	// Unknown fields in the answer and in its TURN entry; the first answer carries 1 MiB.
	var padded atomic.Int32
	pad := func() string {
		n := 16 << 10
		if padded.Add(1) == 1 {
			n = 512 << 10
		}
		return `"pad":"` + strings.Repeat("p", n) + `",`
	}
	ie.rewriteGenerate(func(b []byte) []byte {
		p := pad()
		b = bytes.Replace(b, []byte(`{"iceServers":`), []byte(`{`+p+`"iceServers":`), 1)
		return bytes.Replace(b, []byte(`"username":`), []byte(p+`"username":`), 1)
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200
	for i := range n {
		a := ie.get(t, "GET", fmt.Sprint("padded-", i), nil)
		if a.status != 200 || len(a.body) > 4<<10 || strings.Contains(a.body, `"pad"`) || a.username() == "" {
			t.Fatalf("padded answer %d: %d, %d bytes", i, a.status, len(a.body))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d identities with 32 KiB answers: heap grew %d KiB", n, grew>>10)
	if s := ie.handler.Stats(); s.Identities != n {
		t.Fatalf("%d cached, want %d", s.Identities, n)
	}
	if grew > 1<<20 {
		t.Errorf("heap grew %d KiB for %d cached credentials, want under 1 MiB", grew>>10, n)
	}

	// Small unknown fields are still passed on.
	small := iceSetup(t, iceserve.Config{})
	small.rewriteGenerate(func(b []byte) []byte {
		return bytes.Replace(b, []byte(`{"iceServers":`), []byte(`{"region":"eu","iceServers":`), 1)
	})
	if a := small.get(t, "GET", "u", nil); a.status != 200 || !strings.Contains(a.body, `"region":"eu"`) {
		t.Errorf("a small unknown field: %d %s", a.status, a.body)
	}
}

// Item 16: stale answers during an outage are logged like refusals, one line per second with a
// count of the rest.
func TestHandlerLogsStaleSampled(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{TTL: time.Hour, RatePerMinute: -1})
	if a := ie.get(t, "GET", "u", nil); a.status != 200 {
		t.Fatal(a.status)
	}
	ie.clock.Advance(31 * time.Minute)
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 500, Count: 1000})
	for i := range 300 {
		if a := ie.get(t, "GET", "u", nil); a.status != 200 {
			t.Fatalf("request %d in the outage: %d", i, a.status)
		}
	}
	const line = "serving the cached credential"
	if n := strings.Count(ie.logs.String(), line); n != 1 {
		t.Errorf("%d stale lines for 300 stale answers in one second, want 1", n)
	}
	ie.clock.Advance(time.Second)
	ie.get(t, "GET", "u", nil)
	if logs := ie.logs.String(); strings.Count(logs, line) != 2 || !strings.Contains(logs, "unlogged_since=299") {
		t.Errorf("the second stale line does not count the 299 unlogged:\n%s", logs)
	}
	if s := ie.handler.Stats(); s.StaleServes != 301 {
		t.Errorf("%d stale serves counted, want 301", s.StaleServes)
	}
}

// sourceClient is an HTTP client whose connections come from ip, one of the loopback
// addresses, so the handler sees callers of several networks.
func sourceClient(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// Item 18: one network rotating identities as fast as it can takes at most its share of the mint
// budget, so new callers of other networks still get credentials. The identity is the caller's
// address; the attacker holds 127.0.1.0/24, each victim a /24 of its own.
func TestHandlerNetworkShare(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintsPerSecond: 4, MintBurst: 8, Identity: func(r *http.Request) string {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		return host
	}})
	next, victim := 1, 2
	attack := func(n int) (ok int) {
		var wg sync.WaitGroup
		var got atomic.Int32
		for range n {
			ip := fmt.Sprint("127.0.1.", next)
			next++
			wg.Go(func() {
				resp, err := sourceClient(ip).Get(ie.srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					got.Add(1)
				}
			})
		}
		wg.Wait()
		return int(got.Load())
	}
	newVictims := func(n int) (ok int) {
		for range n {
			resp, err := sourceClient(fmt.Sprint("127.0.", victim, ".1")).Get(ie.srv.URL)
			victim++
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok++
			}
		}
		return ok
	}
	attackerOK, victimsOK, victimsAsked := attack(60), newVictims(6), 6
	for range 5 {
		ie.clock.Advance(time.Second)
		attackerOK += attack(30)
		victimsOK += newVictims(3)
		victimsAsked += 3
	}
	t.Logf("attacker: %d of 210 new identities served; other networks: %d of %d", attackerOK, victimsOK, victimsAsked)
	// The share is a quarter: burst 2, then 1 a second.
	if attackerOK > 2+5 || victimsOK != victimsAsked {
		t.Errorf("attacker got %d (want at most 7), other networks' new callers %d of %d (want all)", attackerOK, victimsOK, victimsAsked)
	}
	if s := ie.handler.Stats(); s.Refused["network_share"] == 0 || s.Refused["mint_budget"] != 0 {
		t.Errorf("refusals %v, want network_share and no mint_budget", s.Refused)
	}
}

// Item 18: without an identity header the source network is the remote address's /24 or /48.
func TestHandlerSourceNetworkPrefixes(t *testing.T) {
	fake := turntest.NewServer()
	defer fake.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "networks"})
	if err != nil {
		t.Fatal(err)
	}
	// Share 0.25 of burst 4: one new identity per network.
	h, err := iceserve.NewHandler(iceserve.Config{Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, MintBurst: 4, MintsPerSecond: 0.01,
		Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"[2001:db8:1:2::1]:5000", 200},
		{"[2001:db8:1:3::1]:5000", 503}, // another /64 of the same /48
		{"[2001:db8:2:3::1]:5000", 200}, // another /48
		{"192.0.2.1:5000", 200},
		{"192.0.2.77:5000", 503},      // the same /24
		{"[::ffff:192.0.2.9]:1", 503}, // the same /24, IPv4-mapped
		{"198.51.100.1:5000", 200},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.addr, rec.Code, tc.want)
		}
	}
}

// Behind a proxy, NetworkFromHeader takes the client's network from the header the proxy sets;
// a request without exactly one such header names none and is not counted.
func TestHandlerNetworkFromHeader(t *testing.T) {
	fake := turntest.NewServer()
	defer fake.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "networks"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, MintBurst: 8, MintsPerSecond: 0.01,
		NetworkShare: 0.125, IdentityHeader: "X-User", SourceNetwork: iceserve.NetworkFromHeader("X-Real-IP"), Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		realIP []string
		want   int
	}{
		{[]string{"192.0.2.1"}, 200},
		{[]string{"192.0.2.200"}, 503}, // the same /24: its one share is spent
		{[]string{"198.51.100.7"}, 200},
		{nil, 200},                // no header: no network, no share
		{[]string{"a", "b"}, 200}, // two values: none taken
		{[]string{"not an address"}, 200},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-User", fmt.Sprint("user-", i))
		req.Header["X-Real-Ip"] = tc.realIP
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("X-Real-IP %q: %d, want %d", tc.realIP, rec.Code, tc.want)
		}
	}
}
