package iceserve_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// modesEnv serves the TURN REST and Matrix endpoints of a handler minting from the fake, and the
// handler itself at /, on one loopback server.
type modesEnv struct {
	fake    *turntest.Server
	hs      *homeserver
	handler *iceserve.Handler
	srv     *httptest.Server
}

func (e *modesEnv) refusals(reason string) int64 { return e.handler.Stats().Refused[reason] }

func (e *modesEnv) mints() int { return e.fake.Fake.Requests()["generateIceServers"] }

func modesSetup(t *testing.T, cfg iceserve.Config) *modesEnv {
	t.Helper()
	fake := turntest.NewServer()
	t.Cleanup(fake.Close)
	relay, err := turnrelay.Attach(fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "modes"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client, cfg.KeyID, cfg.KeySecret = fake.Client(), key.ID, key.Secret
	h, err := iceserve.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &modesEnv{fake: fake, hs: newHomeserver(t), handler: h}
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret(restKey))
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, iceserve.MatrixConfig{Homeserver: e.hs.URL})
	mux := http.NewServeMux()
	mux.Handle("/{$}", h)
	mux.Handle("/turn-rest", h.TURNRESTHandler(keys))
	matrix := h.MatrixHandler(v)
	for _, p := range iceserve.MatrixTURNServerPaths {
		mux.Handle(p, matrix)
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *modesEnv) do(t *testing.T, method, path string, query url.Values, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path+"?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func restQuery(username string) url.Values {
	return url.Values{"service": {"turn"}, "username": {username}, "key": {restKey}}
}

func decodeAnswer(t *testing.T, body []byte) iceserve.TURNRESTAnswer {
	t.Helper()
	var a iceserve.TURNRESTAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return a
}

// The TURN REST answer allocates on the fake's relay, comes from the handler's cache for the
// same username, and a wrong key mints nothing.
func TestTURNRESTEndpoint(t *testing.T) {
	e := modesSetup(t, iceserve.Config{TTL: time.Hour})
	status, _, body := e.do(t, "GET", "/turn-rest", restQuery("alice"), nil)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	a := decodeAnswer(t, body)
	if a.Username == "" || a.Password == "" || a.TTL < 3590 || a.TTL > 3600 || len(a.URIs) == 0 {
		t.Fatalf("answer %+v, want a credential with about 3600s left", a)
	}
	for _, u := range a.URIs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			t.Errorf("URI %q is not TURN", u)
		}
	}
	report, err := turncheck.Check(context.Background(), []turn.ICEServer{{URLs: a.URIs, Username: a.Username, Credential: turn.NewSecret(a.Password)}}, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil || !report.TURNWorks() {
		t.Fatalf("the answer does not relay: %v %+v", err, report.Results)
	}

	status, _, body = e.do(t, "GET", "/turn-rest", restQuery("alice"), nil)
	if again := decodeAnswer(t, body); status != 200 || again.Username != a.Username {
		t.Errorf("second request for alice: %d, username %q; want the cached %q", status, again.Username, a.Username)
	}
	if n := e.mints(); n != 1 {
		t.Errorf("%d mints for one username, want 1", n)
	}
	e.do(t, "GET", "/turn-rest", restQuery("bob"), nil)
	if n := e.mints(); n != 2 {
		t.Errorf("%d mints for two usernames, want 2", n)
	}

	bad := restQuery("carol")
	bad.Set("key", strings.Repeat("w", 32))
	status, _, body = e.do(t, "GET", "/turn-rest", bad, nil)
	if status != 401 || strings.Contains(string(body), "password") {
		t.Errorf("wrong key: %d %s", status, body)
	}
	if n, r := e.mints(), e.refusals("unauthorized"); n != 2 || r != 1 {
		t.Errorf("after a wrong key: %d mints (want 2), %d unauthorized refusals (want 1)", n, r)
	}
}

// The handler's refusals reach a TURN REST caller as they are: 429 with Retry-After past the
// caller's limit, 503 when the upstream fails.
func TestTURNRESTEndpointPassesRefusalsOn(t *testing.T) {
	e := modesSetup(t, iceserve.Config{TTL: time.Hour, RatePerMinute: 1, Burst: 1})
	if status, _, body := e.do(t, "GET", "/turn-rest", restQuery("alice"), nil); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	status, hdr, _ := e.do(t, "GET", "/turn-rest", restQuery("alice"), nil)
	if status != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d, Retry-After %q; want 429 with Retry-After", status, hdr.Get("Retry-After"))
	}
	if err := e.fake.Fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 503}); err != nil {
		t.Fatal(err)
	}
	status, hdr, body := e.do(t, "GET", "/turn-rest", restQuery("bob"), nil)
	if status != 503 || hdr.Get("Retry-After") == "" || strings.Contains(string(body), "username") {
		t.Errorf("upstream failing: %d %s, Retry-After %q; want 503 with Retry-After", status, body, hdr.Get("Retry-After"))
	}
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func TestMatrixEndpoint(t *testing.T) {
	logs := &syncbuf.Buffer{}
	e := modesSetup(t, iceserve.Config{TTL: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	e.hs.mu.Lock()
	e.hs.tokens["tok-alice-phone"] = "@alice:example.org"
	e.hs.mu.Unlock()
	status, hdr, body := e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-alice"))
	if status != 200 || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %s (CORS %q)", status, body, hdr.Get("Access-Control-Allow-Origin"))
	}
	a := decodeAnswer(t, body)
	if a.Username == "" || a.Password == "" || a.TTL < 3590 || len(a.URIs) == 0 {
		t.Errorf("answer %+v", a)
	}
	// Alice's other device, over the r0 path: the same user, the handler's cached credential.
	status, _, body = e.do(t, "GET", iceserve.MatrixTURNServerPaths[1], nil, bearer("tok-alice-phone"))
	if b := decodeAnswer(t, body); status != 200 || b.Username != a.Username {
		t.Errorf("alice's second device: %d, username %q, want the cached %q", status, b.Username, a.Username)
	}
	if n := e.mints(); n != 1 {
		t.Errorf("%d mints for one Matrix user, want 1", n)
	}

	for _, tc := range []struct {
		name    string
		header  http.Header
		status  int
		errcode string
		reason  string
	}{
		{"unknown token", bearer("tok-mallory"), 401, "M_UNKNOWN_TOKEN", "unknown_token"},
		{"no token", nil, 401, "M_MISSING_TOKEN", "missing_token"},
	} {
		status, _, body := e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, tc.header)
		var me iceserve.MatrixError
		json.Unmarshal(body, &me)
		if status != tc.status || me.Errcode != tc.errcode || e.refusals(tc.reason) != 1 {
			t.Errorf("%s: %d %s, %d %s refusals; want %d %s counted once", tc.name, status, body, e.refusals(tc.reason), tc.reason, tc.status, tc.errcode)
		}
	}
	// The homeserver is down: 503, nothing minted.
	e.hs.Close()
	status, hdr, body = e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-bob"))
	var me iceserve.MatrixError
	json.Unmarshal(body, &me)
	if status != 503 || me.Errcode != "M_UNKNOWN" || hdr.Get("Retry-After") == "" {
		t.Errorf("homeserver down: %d %s, Retry-After %q", status, body, hdr.Get("Retry-After"))
	}
	if !strings.Contains(logs.String(), "could not vouch for a token\" cause=unreachable") {
		t.Errorf("the log does not say why the homeserver could not answer:\n%s", logs)
	}
	if n := e.mints(); n != 1 {
		t.Errorf("%d mints after refusals, want 1", n)
	}
	// A preflight from a Matrix web client on another origin.
	status, hdr, _ = e.do(t, "OPTIONS", iceserve.MatrixTURNServerPaths[0], nil, http.Header{"Origin": {"https://app.element.io"}, "Access-Control-Request-Headers": {"authorization"}})
	if status != 204 || !strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", status, hdr)
	}
}

func TestMatrixEndpointRateLimited(t *testing.T) {
	e := modesSetup(t, iceserve.Config{TTL: time.Hour, RatePerMinute: 1, Burst: 1})
	e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-alice"))
	status, hdr, body := e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-alice"))
	var limited struct {
		Errcode      string `json:"errcode"`
		RetryAfterMs int64  `json:"retry_after_ms"`
	}
	json.Unmarshal(body, &limited)
	if status != 429 || limited.Errcode != "M_LIMIT_EXCEEDED" || limited.RetryAfterMs < 1000 || hdr.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d %s", status, body)
	}
}

// The modes' refusals are logged (by reason, sampled) and counted, and no API key, access token
// or credential reaches the log.
func TestModesLogRefusalsWithoutSecrets(t *testing.T) {
	logs := &syncbuf.Buffer{}
	e := modesSetup(t, iceserve.Config{TTL: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	_, _, body := e.do(t, "GET", "/turn-rest", restQuery("alice"), nil)
	password := decodeAnswer(t, body).Password
	wrong := restQuery("alice")
	wrong.Set("key", "wrong-key-3f9a8c7b6d5e4f3a2b1c")
	e.do(t, "GET", "/turn-rest", wrong, nil)
	e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-alice"))
	e.do(t, "GET", iceserve.MatrixTURNServerPaths[0], nil, bearer("tok-mallory-secret"))
	out := logs.String()
	for _, reason := range []string{"reason=unauthorized", "reason=unknown_token"} {
		if !strings.Contains(out, reason) {
			t.Errorf("no refusal logged with %s:\n%s", reason, out)
		}
	}
	for _, secret := range []string{restKey, "wrong-key-3f9a8c7b6d5e4f3a2b1c", "tok-alice", "tok-mallory-secret", password} {
		if strings.Contains(out, secret) {
			t.Errorf("%q reached the log:\n%s", secret, out)
		}
	}
	if st := e.handler.Stats(); st.Refused["unauthorized"] != 1 || st.Refused["unknown_token"] != 1 {
		t.Errorf("refusals %v, want one unauthorized and one unknown_token", st.Refused)
	}
}

// A browser cannot take a mode's caller's credential by naming itself after it: the modes'
// identities start with a byte no header carries, and one that does start so is refused.
func TestModeIdentitiesCannotBeForged(t *testing.T) {
	e := modesSetup(t, iceserve.Config{TTL: time.Hour, IdentityHeader: "X-User", Identity: func(r *http.Request) string {
		if v := r.Header.Get("X-Raw"); v != "" {
			return "\x00" + v // what a careless Identity function might return
		}
		return r.Header.Get("X-User")
	}})
	status, _, body := e.do(t, "GET", "/turn-rest", restQuery("alice"), nil)
	if status != 200 {
		t.Fatalf("TURN REST: %d %s", status, body)
	}
	rest := decodeAnswer(t, body)
	for _, h := range []http.Header{{"X-User": {"turn-rest:alice"}}, {"X-User": {"\\x00turn-rest:alice"}}} {
		status, _, body = e.do(t, "GET", "/", nil, h)
		if status == 200 && strings.Contains(string(body), rest.Username) {
			t.Errorf("browser %v got the TURN REST caller's credential", h)
		}
	}
	status, _, _ = e.do(t, "GET", "/", nil, http.Header{"X-Raw": {"turn-rest:alice"}})
	if status != http.StatusBadRequest {
		t.Errorf("an identity starting with NUL: %d, want 400", status)
	}
}
