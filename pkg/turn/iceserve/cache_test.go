package iceserve_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Item 1: an identity over the cap is refused and nothing is remembered for it.
func TestHandlerIdentityCap(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MaxIdentityBytes: 64})
	a := ie.get(t, "GET", strings.Repeat("x", 65), nil)
	if a.status != 400 || !strings.Contains(a.parsed.Error, "over 64 bytes") {
		t.Errorf("long identity: %d %s", a.status, a.body)
	}
	if s := ie.handler.Stats(); s.Identities != 0 || s.Callers != 0 || ie.mints() != 0 {
		t.Errorf("a refused identity left state: %+v, %d mints", s, ie.mints())
	}
	if a := ie.get(t, "GET", strings.Repeat("x", 64), nil); a.status != 200 {
		t.Errorf("identity at the cap: %d", a.status)
	}
	// A request refused upstream leaves nothing either.
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 401})
	if a := ie.get(t, "GET", "refused", nil); a.status != 502 {
		t.Errorf("upstream 401: %d", a.status)
	}
	if s := ie.handler.Stats(); s.Identities != 1 || s.Callers != 1 {
		t.Errorf("after a refused newcomer: %+v", s)
	}
}

// Item 6: freshness counts from when the mint was sent, and a failed refresh serves the cached
// credential while it has MinRemaining left, with its true expiresAt.
func TestHandlerStaleWhileValid(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{TTL: time.Hour, MinRemaining: 15 * time.Minute})
	sent := ie.clock.Now()
	// The upstream takes ten (simulated) minutes to answer.
	base := ie.contract.Base
	ie.contract.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		ie.clock.Advance(10 * time.Minute)
		return base.RoundTrip(r)
	})
	first := ie.get(t, "GET", "u", nil)
	if first.status != 200 || first.parsed.ExpiresAt != sent.Add(time.Hour).Unix() {
		t.Fatalf("%d expiresAt %d, want sent + TTL = %d", first.status, first.parsed.ExpiresAt, sent.Add(time.Hour).Unix())
	}
	ie.contract.Base = base
	ie.clock.Advance(20*time.Minute + time.Second) // 30 minutes after sending: due for refresh
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 500, Count: 100})
	a := ie.get(t, "GET", "u", nil)
	if a.status != 200 || a.username() != first.username() || a.parsed.ExpiresAt != first.parsed.ExpiresAt {
		t.Fatalf("refresh failed with 30m left: %d %s", a.status, a.body)
	}
	if s := ie.handler.Stats(); s.StaleServes != 1 || ie.mints() != 2 {
		t.Errorf("stats %+v after %d mints", s, ie.mints())
	}
	if logs := ie.logs.String(); !strings.Contains(logs, "serving the cached credential") || strings.Contains(logs, first.parsed.ICEServers[1].Credential) {
		t.Errorf("stale serve not logged, or logged with the credential:\n%s", logs)
	}
	ie.clock.Advance(15 * time.Minute) // 14m59s left: under MinRemaining
	if a := ie.get(t, "GET", "u", nil); a.status != 502 {
		t.Errorf("refresh failed with under MinRemaining left: %d, want 502", a.status)
	}
	ie.fake.ClearFaults()
	ie.clock.Advance(time.Second)
	if a := ie.get(t, "GET", "u", nil); a.status != 200 || a.username() == first.username() {
		t.Errorf("after recovery: %d, same username %v", a.status, a.username() == first.username())
	}
}

// Item 7: a dropped credential is never served again; with revoke, the fake refuses it too.
func TestHandlerDrop(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	first := ie.get(t, "GET", "alice", nil).username()
	if err := ie.handler.Drop(context.Background(), "alice", true); err != nil {
		t.Fatal(err)
	}
	if !ie.fake.Revoked(first) {
		t.Error("not revoked upstream")
	}
	second := ie.get(t, "GET", "alice", nil).username()
	if second == "" || second == first {
		t.Fatalf("after Drop: %q, first %q", second, first)
	}
	if err := ie.handler.Drop(context.Background(), "alice", false); err != nil {
		t.Fatal(err)
	}
	if ie.fake.Revoked(second) {
		t.Error("revoked without being asked")
	}
	// A dropped credential is not served stale either.
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 500})
	if a := ie.get(t, "GET", "alice", nil); a.status != 502 {
		t.Errorf("after Drop with upstream failing: %d", a.status)
	}
	if err := ie.handler.Drop(context.Background(), "nobody", true); err != nil {
		t.Errorf("dropping an unknown identity: %v", err)
	}
}

// Item 8: what browsers need.
func TestHandlerBrowsers(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{AllowedOrigins: []string{"https://app.example"}, AllowCredentials: true, RefuseCrossSiteGET: true})
	pre := ie.get(t, "OPTIONS", "", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-user"})
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "X-User") ||
		pre.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: %d %v", pre.status, pre.header)
	}
	a := ie.get(t, "POST", "u", map[string]string{"Origin": "https://app.example"})
	if a.status != 200 || a.header.Get("Vary") != "Origin" || a.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin: %d %v", a.status, a.header)
	}
	for _, s := range a.parsed.ICEServers {
		for _, u := range s.URLs {
			if hostPort, _, _ := strings.Cut(u, "?"); strings.HasSuffix(hostPort, ":53") {
				t.Errorf("port 53 URL handed to a browser: %s", u)
			}
		}
	}
	if len(a.parsed.ICEServers) != 2 || len(a.parsed.ICEServers[1].URLs) != 5 {
		t.Errorf("filtering dropped too much: %s", a.body)
	}
	if a := ie.get(t, "GET", "u", map[string]string{"Origin": "https://evil.example"}); a.status != 403 || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin: %d %v", a.status, a.header)
	}
	if a := ie.get(t, "POST", "u", map[string]string{"Origin": ie.srv.URL}); a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("same-origin POST: %d %v", a.status, a.header)
	}
	if a := ie.get(t, "GET", "victim", map[string]string{"Sec-Fetch-Site": "cross-site"}); a.status != 403 {
		t.Errorf("cross-site GET without Origin: %d", a.status)
	}
	if a := ie.get(t, "GET", "u", map[string]string{"Sec-Fetch-Site": "same-origin"}); a.status != 200 {
		t.Errorf("same-origin GET: %d", a.status)
	}
	if a := ie.get(t, "DELETE", "u", nil); a.status != 405 || a.header.Get("Allow") == "" {
		t.Errorf("DELETE: %d", a.status)
	}
	if s := ie.handler.Stats(); s.Callers != 1 || ie.mints() != 1 {
		t.Errorf("refused requests left state or reached upstream: %+v, %d mints", s, ie.mints())
	}

	post := iceSetup(t, iceserve.Config{POSTOnly: true, KeepPort53: true})
	if a := post.get(t, "GET", "u", nil); a.status != 405 || a.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("GET with POSTOnly: %d %v", a.status, a.header)
	}
	a = post.get(t, "POST", "u", nil)
	if a.status != 200 || !strings.Contains(a.body, ":53?transport=udp") {
		t.Errorf("KeepPort53: %d %s", a.status, a.body)
	}
}

func TestHandlerAuthorizeAndIdentity(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{Authorize: func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer app-session" {
			return context.Canceled
		}
		return nil
	}})
	if a := ie.get(t, "GET", "u", nil); a.status != 403 || strings.Contains(a.body, "canceled") {
		t.Errorf("unauthorised: %d %s", a.status, a.body)
	}
	if a := ie.get(t, "GET", "", map[string]string{"Authorization": "Bearer app-session"}); a.status != 400 {
		t.Errorf("no identity: %d", a.status)
	}
	if a := ie.get(t, "GET", "u", map[string]string{"Authorization": "Bearer app-session"}); a.status != 200 {
		t.Errorf("authorised: %d %s", a.status, a.body)
	}
	if n := ie.mints(); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// Upstream failures reach the browser as their class only.
func TestHandlerUpstreamFaults(t *testing.T) {
	for _, tc := range []struct {
		fault  turntest.Fault
		status int
		class  string
	}{
		{turntest.Fault{Status: 401}, 502, "unauthorized"},
		{turntest.Fault{Status: 500}, 502, "server"},
		{turntest.Fault{Status: 429}, 503, "rate_limited"},
		{turntest.Fault{Body: turntest.BodyHTML}, 502, "server"},
		{turntest.Fault{Body: turntest.BodyTruncated}, 502, "unexpected_response"},
	} {
		ie := iceSetup(t, iceserve.Config{})
		ie.contract.RequestsOnly = true
		tc.fault.Operation = "generateIceServers"
		ie.fake.InjectFault(tc.fault)
		a := ie.get(t, "GET", "u", nil)
		if a.status != tc.status || a.parsed.Error == "" {
			t.Errorf("%+v: %d %s, want %d with a JSON error", tc.fault, a.status, a.body, tc.status)
		}
		if tc.status == 503 && a.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if s := ie.handler.Stats(); s.UpstreamErrors[tc.class] != 1 {
			t.Errorf("%+v: upstream errors %v, want one %s", tc.fault, s.UpstreamErrors, tc.class)
		}
		if !strings.Contains(ie.logs.String(), "class="+tc.class) {
			t.Errorf("%+v: log lacks the class:\n%s", tc.fault, ie.logs.String())
		}
		ie.checkNoSecrets(t, a.body)
	}
}

// A cached credential printed or logged shows its times, never its body or username.
func TestICECredentialRedacts(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	a := ie.get(t, "GET", "u", nil)
	store := iceserve.NewMemoryStore(10, 10)
	c := &iceserve.Credential{Body: []byte(a.body), Username: a.username(), Expires: time.Unix(1_900_000_000, 0)}
	if err := store.SetCredential(context.Background(), "k", c); err != nil {
		t.Fatal(err)
	}
	got, _ := store.Credential(context.Background(), "k")
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("cached", "c", got, "v", *got)
	for _, s := range []string{fmt.Sprint(got), fmt.Sprintf("%+v %#v %v %s", got, *got, *got, got), logs.String()} {
		if strings.Contains(s, a.username()) || strings.Contains(s, a.parsed.ICEServers[1].Credential) || !strings.Contains(s, "expires:") {
			t.Errorf("printed as %q", s)
		}
	}
}

// Item 9: the handler tags credentials with a function of the identity only when asked.
func TestHandlerCustomIdentifier(t *testing.T) {
	for _, tc := range []struct {
		cfg  iceserve.Config
		want string
	}{
		{iceserve.Config{}, ""},
		{iceserve.Config{CustomIdentifier: func(id string) string { return "tag-" + id }}, "tag-alice"},
	} {
		ie := iceSetup(t, tc.cfg)
		a := ie.get(t, "GET", "alice", nil)
		if a.status != 200 || len(a.parsed.ICEServers) != 2 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		got, ok := ie.fake.CustomIdentifier(a.parsed.ICEServers[1].Username)
		if !ok || got != tc.want {
			t.Errorf("customIdentifier %q (credential known: %v), want %q", got, ok, tc.want)
		}
	}
}

// Without an identity header, IPv6 callers are told apart by their /64: addresses of one /64
// share a credential and a limit, so a client cannot rotate through its own prefix.
func TestHandlerIPv6Identity(t *testing.T) {
	fake := turntest.NewServer()
	defer fake.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "v6"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, Burst: 2, RatePerMinute: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	for i, addr := range []string{"[2001:db8:1:2::1]:5000", "[2001:db8:1:2::ffff]:5001", "[2001:db8:1:2:a:b:c:d]:5002", "[2001:db8:1:3::1]:5003"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes[fmt.Sprint(i, rec.Code)]++
	}
	// Burst 2 for 2001:db8:1:2::/64, whatever the address; the other /64 is another caller.
	if want := map[string]int{"0 200": 1, "1 200": 1, "2 429": 1, "3 200": 1}; !maps.Equal(codes, want) {
		t.Errorf("answers %v, want %v", codes, want)
	}
	if n := fake.Requests()["generateIceServers"]; n != 2 {
		t.Errorf("%d mints, want one per /64", n)
	}
}

// Identities rotated by an attacker fill a full cache, but callers who come back keep their
// credentials: the cache evicts entries never served from it first.
func TestHandlerEvictionKeepsReturningCallers(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MaxIdentities: 64, MintsPerSecond: 1000, MintBurst: 1000})
	ie.contract.RequestsOnly = true
	for i := range 16 {
		for range 2 { // minted, then served from the cache
			if a := ie.get(t, "GET", fmt.Sprint("regular-", i), nil); a.status != 200 {
				t.Fatalf("regular caller: %d", a.status)
			}
		}
	}
	for i := range 640 {
		if a := ie.get(t, "GET", fmt.Sprint("rotated-", i), nil); a.status != 200 {
			t.Fatalf("rotated identity %d: %d", i, a.status)
		}
		if i%500 == 499 {
			ie.clock.Advance(time.Second) // the mint budget refills
		}
	}
	before := ie.mints()
	for i := range 16 {
		ie.get(t, "GET", fmt.Sprint("regular-", i), nil)
	}
	if n := ie.mints() - before; n > 1 {
		t.Errorf("%d of 16 returning callers had to mint again after 640 rotated identities filled the cache", n)
	}
}
