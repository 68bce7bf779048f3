package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turnjs"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// troubledEndpoint is a credential endpoint the test controls: it mints from the fake like
// serve-ice (without a cache: every answer is a new credential), answers 429 with Retry-After
// while throttled, and drops every connection while down.
type troubledEndpoint struct {
	client *turn.Client
	key    turn.KeyWithSecret
	ttl    time.Duration

	mu         sync.Mutex
	throttle   int  // requests left to answer 429
	retryAfter int  // seconds, sent with each 429
	down       bool // drop connections without an answer
	requests   []time.Time
	usernames  []string // TURN usernames served, in order
}

func (e *troubledEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests = append(e.requests, time.Now())
	down, throttled := e.down, e.throttle > 0
	if throttled {
		e.throttle--
	}
	e.mu.Unlock()
	switch {
	case down:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	case throttled:
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
		http.Error(w, `{"error": "rate limited"}`, http.StatusTooManyRequests)
		return
	}
	ice, err := e.client.GenerateICEServers(r.Context(), turn.GenerateICEServersParams{KeyID: e.key.ID, KeySecret: e.key.Secret, TTL: e.ttl})
	if err != nil {
		http.Error(w, "mint failed", http.StatusBadGateway)
		return
	}
	raw, err := json.Marshal(ice)
	var body map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	body["expiresAt"] = json.RawMessage(strconv.FormatInt(ice.Expires.Unix(), 10))
	e.mu.Lock()
	for _, s := range ice.Servers {
		if s.Username != "" {
			e.usernames = append(e.usernames, s.Username)
		}
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(body)
}

func (e *troubledEndpoint) set(f func(e *troubledEndpoint)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *troubledEndpoint) snapshot() (requests []time.Time, usernames []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.requests...), append([]string(nil), e.usernames...)
}

// fakeWithRelay starts the fake with its TURN relay attached; both stop when the test ends.
func fakeWithRelay(t *testing.T) *turntest.Server {
	t.Helper()
	fake := turntest.NewServer()
	t.Cleanup(fake.Close)
	relay, err := turnrelay.Attach(fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return fake
}

// callPage serves testdata/call.html at /call/, cfturn.js at /cfturn.js and the endpoint at /ice,
// all on one origin as a real deployment would.
func callPage(t *testing.T, ice http.Handler) string {
	t.Helper()
	page, err := os.ReadFile("testdata/call.html")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /cfturn.js", turnjs.Handler())
	mux.HandleFunc("GET /call/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.Handle("/ice", ice)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// callEvent is one event of cfturn.js as the page records it.
type callEvent struct {
	Peer         string  `json:"peer"`
	Type         string  `json:"type"`
	T            float64 `json:"t"` // performance.now(), ms
	Reason       string  `json:"reason"`
	Status       int     `json:"status"`
	RetryAfterMs float64 `json:"retryAfterMs"`
	DelayMs      float64 `json:"delayMs"`
	Changed      bool    `json:"changed"`
	Error        string  `json:"error"`
}

// callState is window.call of testdata/call.html.
type callState struct {
	Events []callEvent `json:"events"`
	ICE    []struct {
		Peer  string  `json:"peer"`
		State string  `json:"state"` // RTCPeerConnection.iceConnectionState
		T     float64 `json:"t"`
	} `json:"ice"`
	Received []struct {
		N    int     `json:"n"`
		T    float64 `json:"t"`    // performance.now() when it arrived, ms
		Sent float64 `json:"sent"` // performance.now() when it was sent, ms (one page, one clock)
	} `json:"received"`
	Sent        int     `json:"sent"`
	Opened      bool    `json:"opened"`
	ClosedAt    float64 `json:"closedAt"`
	ExpiresAtMs float64 `json:"expiresAtMs"` // without the helper: when the one credential expires
	Now         float64 `json:"now"`         // performance.now(), updated every 100 ms
	Error       string  `json:"error"`
}

// count returns how many events of type the peer reported after ms since the page started
// (peer "" is either).
func (s callState) count(peer, typ string, after float64) int {
	n := 0
	for _, e := range s.Events {
		if e.Type == typ && (peer == "" || e.Peer == peer) && e.T > after {
			n++
		}
	}
	return n
}

// callTab opens the call page in a new tab of browser.
func callTab(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
	return tab
}

func readCall(t *testing.T, tab context.Context) callState {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[callState](`window.call || {}`))
	if err != nil {
		t.Fatalf("read window.call: %v", err)
	}
	return s
}

// waitCall polls the page until cond holds, failing after limit with the page's log.
func waitCall(t *testing.T, tab context.Context, limit time.Duration, what string, cond func(callState) bool) callState {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := readCall(t, tab)
		if s.Error != "" {
			t.Fatalf("the page failed: %s\n%s", s.Error, pageLog(tab))
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s\npage log:\n%s", limit, what, pageLog(tab))
		}
		// The browser is an external process: poll it with a bounded wait.
		time.Sleep(200 * time.Millisecond)
	}
}

func pageLog(tab context.Context) string {
	log, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
	return log
}

// waitDelivered waits until every message sent so far has arrived, and returns the state then.
func waitDelivered(t *testing.T, tab context.Context) callState {
	t.Helper()
	want := readCall(t, tab).Sent
	return waitCall(t, tab, 15*time.Second, fmt.Sprintf("the %d messages sent to arrive", want), func(s callState) bool {
		return len(s.Received) >= want
	})
}

// maxStall bounds how long a message may wait while the helper restarts ICE onto new
// credentials. On an idle machine a restart delays no message (the gaps stay at the page's 1 s
// send interval); on a loaded 2-core machine, with ICE connected throughout, a message was seen
// waiting up to 6 s for the data channel to send it again. A restart that broke the path for
// longer than Chrome's consent checks allow (a few seconds) shows as ICE disconnecting, which
// checkMessages fails on whatever the timing; a shorter break only this ceiling can catch.
const maxStall = 10 * time.Second

// checkMessages fails unless every message A sent arrived, in order, ICE never lost the path
// once connected (until the page closed the call), and no message was delayed on the way by more
// than maxGap or came later than maxGap after the one before, unless the sender itself paused (a
// page starved of CPU fires its timer late; that is no gap in the path).
func checkMessages(t *testing.T, tab context.Context, s callState, maxGap time.Duration) {
	t.Helper()
	if len(s.Received) == 0 {
		t.Fatal("no message arrived")
	}
	connected := map[string]bool{} // by peer
	for _, c := range s.ICE {
		switch {
		case c.State == "connected" || c.State == "completed":
			connected[c.Peer] = true
		case connected[c.Peer] && (c.State == "disconnected" || c.State == "failed") && (s.ClosedAt == 0 || c.T < s.ClosedAt):
			t.Errorf("peer %s: ICE %s at %.3f s: a restart lost the path", c.Peer, c.State, c.T/1000)
		}
	}
	limit := float64(maxGap / time.Millisecond)
	worstGap, worstDelay, at, delayAt := 0.0, 0.0, 0.0, 0.0
	for i, m := range s.Received {
		if m.N != i {
			t.Fatalf("message %d arrived as number %d: messages were lost (%d sent, %d received)", i, m.N, s.Sent, len(s.Received))
		}
		if d := m.T - m.Sent; d > worstDelay {
			worstDelay, delayAt = d, m.T
		}
		if i == 0 {
			continue
		}
		gap, senderGap := m.T-s.Received[i-1].T, m.Sent-s.Received[i-1].Sent
		if gap > limit && senderGap > limit-500 {
			t.Logf("message %d came %.0f ms after the one before, but was sent %.0f ms after it: the page was starved", i, gap, senderGap)
			continue
		}
		if gap > worstGap {
			worstGap, at = gap, m.T
		}
	}
	if worstGap > limit {
		t.Errorf("longest gap between messages %.0f ms, over %v, ending at %.3f s", worstGap, maxGap, at/1000)
	}
	if worstDelay > limit {
		t.Errorf("a message took %.0f ms to arrive, over %v, arriving at %.3f s", worstDelay, maxGap, delayAt/1000)
	}
	if worstGap > limit || worstDelay > limit {
		// The page's log around the gap says whether the path, ICE or the page stalled.
		from, to := min(at-worstGap, delayAt-worstDelay)-3000, max(at, delayAt)+1000
		for line := range strings.Lines(pageLog(tab)) {
			if sec, _, ok := strings.Cut(line, " "); ok {
				if ms, err := strconv.ParseFloat(sec, 64); err == nil && ms*1000 >= from && ms*1000 <= to {
					t.Log("page: " + strings.TrimSuffix(line, "\n"))
				}
			}
		}
	}
	t.Logf("%d messages, longest gap %.0f ms, longest delay on the way %.0f ms", len(s.Received), worstGap, worstDelay)
}

// TestHelperRecoversFromEndpointTrouble runs cfturn.js in headless Chromium against an endpoint
// that first answers 429 with Retry-After, later drops every connection for a while: the helper
// waits out the Retry-After, refreshes before expiry, retries with backoff while the endpoint is
// down, moves the call onto credentials minted after it came back, and stops once the
// connections close. Every message of the data channel arrives throughout.
func TestHelperRecoversFromEndpointTrouble(t *testing.T) {
	chromium := needChromium(t)
	t.Parallel()
	fake := fakeWithRelay(t)
	ctx := context.Background()
	key, err := fake.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "helper"})
	if err != nil {
		t.Fatal(err)
	}
	ep := &troubledEndpoint{client: fake.Client(), key: key, ttl: 20 * time.Second, throttle: 2, retryAfter: 1}
	base := callPage(t, ep)
	browser := startBrowser(t, chromium)
	// refreshAt 0.3: a refresh every 6 s, with 14 s of the credential left.
	tab := callTab(t, browser, base+"/call/?refreshAt=0.3")

	// 429 then 200: each peer's first fetch is throttled, and its retry waits the Retry-After.
	s := waitCall(t, tab, 30*time.Second, "the data channel to open", func(s callState) bool { return s.Opened })
	for _, peer := range []string{"A", "B"} {
		var retry *callEvent
		for i, e := range s.Events {
			if e.Peer == peer && e.Type == "retry" {
				retry = &s.Events[i]
				break
			}
		}
		if retry == nil || retry.Status != 429 || retry.RetryAfterMs != 1000 || retry.DelayMs < 1000 || retry.DelayMs > 1300 {
			t.Errorf("peer %s: first retry %+v, want status 429, Retry-After 1000 ms, a delay of 1000-1200 ms", peer, retry)
		}
	}
	requests, _ := ep.snapshot()
	if len(requests) < 4 {
		t.Fatalf("the endpoint saw %d requests, want 2 throttled and 2 served", len(requests))
	}
	if gap := requests[2].Sub(requests[1]); gap < 900*time.Millisecond {
		t.Errorf("a retry came %v after the 429s, before their Retry-After of 1s", gap)
	}

	// Before expiry each peer fetches new credentials and restarts ICE onto them.
	opened := s.Events[len(s.Events)-1].T
	s = waitCall(t, tab, 20*time.Second, "both peers to restart for expiry", func(s callState) bool {
		return s.count("A", "restarted", opened) >= 1 && s.count("B", "restarted", opened) >= 1
	})
	for _, e := range s.Events {
		if e.Type == "restart" && e.Reason != "expiry" {
			t.Errorf("restart for %q, want only expiry restarts: %+v", e.Reason, e)
		}
	}

	// Down for 6 s, less than the 14 s the credentials in use have left: the refreshes fail and
	// are retried with growing delays, and the call goes on.
	ep.set(func(e *troubledEndpoint) { e.down = true })
	wentDown := s.Events[len(s.Events)-1].T
	waitCall(t, tab, 20*time.Second, "a fetch to fail while the endpoint is down", func(s callState) bool {
		return s.count("", "retry", wentDown) >= 1
	})
	firstFailure := time.Now()
	s = waitCall(t, tab, 30*time.Second, "6 s of failed fetches while the endpoint is down", func(s callState) bool {
		return s.count("A", "retry", wentDown) >= 3 && s.count("B", "retry", wentDown) >= 3 && time.Since(firstFailure) > 6*time.Second
	})
	delays := map[string][]float64{}
	for _, e := range s.Events {
		if e.Type == "retry" && e.T > wentDown {
			if e.Status != 0 {
				t.Errorf("retry while down with status %d, want 0 (no answer): %+v", e.Status, e)
			}
			delays[e.Peer] = append(delays[e.Peer], e.DelayMs)
		}
	}
	for peer, d := range delays {
		if len(d) >= 2 && d[len(d)-1] <= d[0] {
			t.Errorf("peer %s: retry delays while down %v do not grow", peer, d)
		}
	}
	ep.set(func(e *troubledEndpoint) { e.down = false })
	_, before := ep.snapshot()
	cameBack := s.Events[len(s.Events)-1].T
	s = waitCall(t, tab, 45*time.Second, "both peers to restart on credentials minted after the endpoint came back", func(s callState) bool {
		return s.count("A", "restarted", cameBack) >= 1 && s.count("B", "restarted", cameBack) >= 1
	})
	_, usernames := ep.snapshot()
	fresh := usernames[len(before):]
	if len(fresh) == 0 {
		t.Fatal("no credential was served after the endpoint came back")
	}
	// The call moved: the relay carries its traffic on the credentials minted after the outage.
	deadline := time.Now().Add(10 * time.Second)
	for _, u := range fresh {
		for fake.RelayedBytes(u) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the relay carried nothing for credential %s, served after the outage", u)
			}
			time.Sleep(100 * time.Millisecond) // the relay counts as packets pass
		}
	}
	checkMessages(t, tab, waitDelivered(t, tab), maxStall)

	// Closed, the peers need no credentials: each helper stops within 2 s, without a fetch.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[any](`window.call.close()`)); err != nil {
		t.Fatal(err)
	}
	requests, _ = ep.snapshot()
	s = waitCall(t, tab, 10*time.Second, "both helpers to stop", func(s callState) bool {
		return s.count("A", "stop", 0) == 1 && s.count("B", "stop", 0) == 1
	})
	for _, e := range s.Events {
		if e.Type == "stop" && e.Reason != "closed" {
			t.Errorf("stop %+v, want reason closed", e)
		}
	}
	if after, _ := ep.snapshot(); len(after) != len(requests) {
		t.Errorf("%d requests reached the endpoint after the connections closed", len(after)-len(requests))
	}
	// The events are for logging: they carry no credential.
	events, err := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.call.events)`))
	if err != nil {
		t.Fatal(err)
	}
	_, served := ep.snapshot()
	for _, u := range served {
		if strings.Contains(events, u) {
			t.Fatalf("a TURN username reached the helper's events: %s", events)
		}
	}
	t.Logf("%d requests in all", len(requests))
}

// TestHelperRestartsAfterICEFailure: the credentials of a running call are revoked, so the relay
// stops relaying for them; ICE loses the path, and cfturn.js restarts it with fresh credentials
// from the endpoint: messages flow again without the page doing anything.
func TestHelperRestartsAfterICEFailure(t *testing.T) {
	chromium := needChromium(t)
	t.Parallel()
	fake := fakeWithRelay(t)
	ctx := context.Background()
	key, err := fake.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "ice-failure"})
	if err != nil {
		t.Fatal(err)
	}
	ep := &troubledEndpoint{client: fake.Client(), key: key, ttl: time.Hour}
	base := callPage(t, ep)
	browser := startBrowser(t, chromium)
	tab := callTab(t, browser, base+"/call/")
	s := waitCall(t, tab, 30*time.Second, "three messages", func(s callState) bool { return len(s.Received) >= 3 })

	_, revoked := ep.snapshot()
	for _, u := range revoked {
		if err := fake.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	revokedAt, before := s.Now, len(s.Received)
	s = waitCall(t, tab, 60*time.Second, "a restart after the path broke, and messages again", func(s callState) bool {
		restarted := 0
		for _, e := range s.Events {
			if e.Type == "restarted" && e.T > revokedAt && (e.Reason == "disconnected" || e.Reason == "ice-failed") {
				restarted++
			}
		}
		return restarted > 0 && len(s.Received) >= before+3 && s.Received[len(s.Received)-1].T > revokedAt
	})
	_, usernames := ep.snapshot()
	if len(usernames) <= len(revoked) {
		t.Fatalf("no credential fetched after the revocation")
	}
	for i := 1; i < len(s.Received); i++ {
		if s.Received[i].N != s.Received[i-1].N+1 {
			// Messages sent while the path was down may be lost; the channel itself must live on.
			t.Logf("messages %d to %d were lost while the path was down", s.Received[i-1].N+1, s.Received[i].N-1)
		}
	}
	for _, e := range s.Events {
		if e.Type == "restart" && e.T > revokedAt {
			t.Logf("restart for %s %.1f s after the revocation", e.Reason, (e.T-revokedAt)/1000)
		}
	}
}
