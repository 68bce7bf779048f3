package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/coturnserver"
	"github.com/cfturn/cfturn/internal/janusserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// The configuration the README's interop sections show, used as is by these tests.
const (
	turnRESTKey      = "9f2c4e0a7b1d3f5e8a6c4b2d0e9f7a1c" // README: /etc/cfturn/turn-rest.key
	coturnSecret     = "3d8f1a6c9e2b5d7f0a4c8e1b6d9f2a5c" // README: /etc/cfturn/coturn.secret and turnserver.conf
	coturnOldSecret  = "0b7e4a1d8c5f2e9b6a3d0c7f4e1b8a5d"
	interopKeyName   = "interop"
	serveICEStartMax = 30 * time.Second
)

// interopEnv is the fake (in this process, with its relay), a key on it, and the cfturn binary.
type interopEnv struct {
	fake  *turntest.Server
	relay *turnrelay.Relay
	key   turn.KeyWithSecret
	bin   string
	dir   string
}

func interopSetup(t *testing.T) *interopEnv {
	t.Helper()
	fake := turntest.NewServer()
	t.Cleanup(fake.Close)
	relay, err := turnrelay.Attach(fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: interopKeyName})
	if err != nil {
		t.Fatal(err)
	}
	return &interopEnv{fake: fake, relay: relay, key: key, bin: buildCfturnOnce(t), dir: t.TempDir()}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  string
)

// buildCfturnOnce builds cfturn once for all the interop tests (into a directory that outlives
// the first test: the binary is removed with the test binary's temporary directory).
func buildCfturnOnce(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cfturn-interop-")
		if err != nil {
			buildErr = err.Error()
			return
		}
		builtBin = filepath.Join(dir, "cfturn")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/cfturn")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err.Error() + "\n" + string(out)
		}
	})
	if buildErr != "" {
		t.Fatalf("go build ./cmd/cfturn: %s", buildErr)
	}
	return builtBin
}

func (e *interopEnv) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveICE starts cfturn serve-ice on the fake with args and returns its root URL.
func (e *interopEnv) serveICE(t *testing.T, env []string, args ...string) string {
	t.Helper()
	var started struct{ URL string }
	all := append([]string{"--base-url", e.fake.APIBaseURL, "serve-ice", "--json", "--addr", "127.0.0.1:0", "--key-id", e.key.ID, "--log-level", "debug"}, args...)
	startCfturn(t, e.bin, append([]string{"CFTURN_KEY_SECRET=" + e.key.Secret.Reveal(), "CLOUDFLARE_ACCOUNT_ID=" + e.fake.Fake.AccountID()}, env...), &started, all...)
	return strings.TrimSuffix(started.URL, "/")
}

func get(t *testing.T, url string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body
}

// cfturnCheck runs `cfturn check --file - --json` on an iceServers answer and returns its report.
func cfturnCheck(t *testing.T, bin string, answer []byte) (checkReport, error) {
	t.Helper()
	cmd := exec.Command(bin, "check", "--file", "-", "--json", "--timeout", "15s")
	cmd.Stdin = bytes.NewReader(answer)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report checkReport
	if jerr := json.Unmarshal(out, &report); jerr != nil {
		t.Fatalf("cfturn check printed no report: %v (%v)\nstdout: %s\nstderr: %s", jerr, err, out, stderr.String())
	}
	return report, err
}

type checkReport struct {
	Results []struct {
		URL    string `json:"url"`
		Result string `json:"result"`
		Detail string `json:"detail"`
	} `json:"results"`
	TURNWorks bool `json:"turnWorks"`
}

// okTURN returns the TURN URLs the report found working.
func (r checkReport) okTURN() []string {
	var out []string
	for _, res := range r.Results {
		if strings.HasPrefix(res.URL, "turn") && res.Result == "ok" {
			out = append(out, res.URL)
		}
	}
	return out
}

// Janus fetches its TURN credentials from serve-ice's TURN REST endpoint, by GET and by POST
// as turn_rest_api_method says, and gathers relay candidates on the fake's relay with them.
func TestJanusTURNRESTThroughServeICE(t *testing.T) {
	e := interopSetup(t)
	keyFile := e.file(t, "turn-rest.key", turnRESTKey+"\n")
	ice := e.serveICE(t, nil, "--turn-rest-path", "/turn-rest", "--turn-rest-key-file", keyFile)
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			before := e.fake.Fake.Requests()["generateIceServers"]
			j := janusserver.Start(t, janusserver.Options{TURNRESTAPI: ice + "/turn-rest", TURNRESTKey: turnRESTKey, Method: method})
			sdp := janusEchotest(t, j, "janus-"+method)
			relays := relayCandidates(sdp)
			if len(relays) == 0 {
				t.Fatalf("no relay candidate in Janus's answer:\n%s\njanus log:\n%s", sdp, j.LogTail(40))
			}
			for _, c := range relays {
				if !strings.HasPrefix(c, "127.0.0.1 ") {
					t.Errorf("relay candidate %q is not on the fake's relay", c)
				}
			}
			if n := e.relay.Allocations(); n == 0 {
				t.Error("the fake's relay holds no allocation")
			}
			if n := e.fake.Fake.Requests()["generateIceServers"] - before; n != 1 {
				t.Errorf("%d mints for one Janus handle, want 1", n)
			}
		})
	}
	// A Janus with the wrong key gets 401 and nothing is minted: its offer is answered without
	// relay candidates.
	before := e.fake.Fake.Requests()["generateIceServers"]
	j := janusserver.Start(t, janusserver.Options{TURNRESTAPI: ice + "/turn-rest", TURNRESTKey: strings.Repeat("0", 32), Method: "GET"})
	if relays := relayCandidates(janusEchotest(t, j, "janus-wrong-key")); len(relays) != 0 {
		t.Errorf("relay candidates with a wrong key: %v", relays)
	}
	if n := e.fake.Fake.Requests()["generateIceServers"] - before; n != 0 {
		t.Errorf("%d mints for a wrong key, want 0", n)
	}
}

// testHomeserver implements whoami over a token table, as Synapse does.
func testHomeserver(t *testing.T, tokens map[string]string) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/_matrix/client/v3/account/whoami" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`))
			return
		}
		user, ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"user_id": user, "is_guest": false, "device_id": "DEVICE"})
	}))
	t.Cleanup(hs.Close)
	return hs
}

// matrix-js-sdk's turnServer(), sent to serve-ice as a homeserver's reverse proxy would route it,
// gets credentials that relay on the fake; a token the homeserver does not know gets
// M_UNKNOWN_TOKEN; a homeserver that is down gets 503; neither mints.
func TestMatrixSDKThroughServeICE(t *testing.T) {
	script := needMatrixSDK(t)
	e := interopSetup(t)
	hs := testHomeserver(t, map[string]string{"syt_alice_token": "@alice:example.org"})
	ice := e.serveICE(t, nil, "--matrix-homeserver", hs.URL, "--allowed-host", "matrix.example.org")
	// The homeserver's reverse proxy, as the README's Caddy and nginx rules configure it: the
	// turnServer paths go to serve-ice with the original Host, everything else to the homeserver.
	proxy := homeserverProxy(t, hs.URL, ice, "matrix.example.org")

	res := matrixTurnServer(t, script, proxy, "syt_alice_token")
	if !res.OK {
		t.Fatalf("turnServer() failed: %+v", res)
	}
	a := res.Answer
	if a.Username == "" || a.Password == "" || a.TTL < 86000 || len(a.URIs) == 0 {
		t.Fatalf("turnServer() = %+v, want a credential with about a day left", a)
	}
	report, err := turncheck.Check(context.Background(), []turn.ICEServer{{URLs: a.URIs, Username: a.Username, Credential: turn.NewSecret(a.Password)}}, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil || !report.TURNWorks() {
		t.Fatalf("the SDK's credentials do not relay: %v %+v", err, report.Results)
	}
	mints := e.fake.Fake.Requests()["generateIceServers"]

	res = matrixTurnServer(t, script, proxy, "syt_mallory_token")
	if res.OK || res.HTTPStatus != 401 || res.Errcode != "M_UNKNOWN_TOKEN" {
		t.Errorf("unknown token: %+v, want 401 M_UNKNOWN_TOKEN", res)
	}
	hs.Close()
	res = matrixTurnServer(t, script, proxy, "syt_bob_token")
	if res.OK || res.HTTPStatus != 503 {
		t.Errorf("homeserver down: %+v, want 503", res)
	}
	if n := e.fake.Fake.Requests()["generateIceServers"]; n != mints {
		t.Errorf("%d mints after the refusals, want %d", n, mints)
	}
}

// homeserverProxy is a homeserver's reverse proxy: Matrix's turnServer paths go to serve-ice
// with Host set to the homeserver's public name (as Caddy passes it, and nginx with
// proxy_set_header Host $host), every other path to the homeserver.
func homeserverProxy(t *testing.T, homeserver, serveICE, host string) string {
	t.Helper()
	hsURL, err := url.Parse(homeserver)
	if err != nil {
		t.Fatal(err)
	}
	iceURL, err := url.Parse(serveICE)
	if err != nil {
		t.Fatal(err)
	}
	turnServer := regexp.MustCompile(`^/_matrix/client/(v3|r0)/voip/turnServer$`)
	toHS, toICE := httputil.NewSingleHostReverseProxy(hsURL), httputil.NewSingleHostReverseProxy(iceURL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if turnServer.MatchString(r.URL.Path) {
			r.Host = host
			toICE.ServeHTTP(w, r)
			return
		}
		toHS.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL
}

// serve-ice's answer in merge mode lists the fake's relay and coturn with a credential each, and
// cfturn check passes on both; in fallback mode it lists the fake's only, and coturn's alone once
// the fake is stopped.
func TestCheckServeICEWithCoturn(t *testing.T) {
	coturn := coturnserver.Start(t, coturnserver.Options{Secrets: []string{coturnSecret}})
	t.Run("merge", func(t *testing.T) {
		e := interopSetup(t)
		secretFile := e.file(t, "coturn.secret", coturnSecret+"\n")
		ice := e.serveICE(t, nil, "--coturn-secret-file", secretFile, "--coturn-url", coturn.URLs()[0], "--coturn-url", coturn.URLs()[1], "--coturn-mode", "merge")
		_, answer := get(t, ice+"/", nil)
		report, err := cfturnCheck(t, e.bin, answer)
		if err != nil {
			t.Fatalf("cfturn check failed: %v %+v", err, report)
		}
		ok := strings.Join(report.okTURN(), " ")
		t.Logf("checked ok: %s", ok)
		for _, u := range append(coturn.URLs(), "turn:"+e.relay.UDPAddr) {
			if !strings.Contains(ok, u) {
				t.Errorf("%s did not check ok: %+v", u, report.Results)
			}
		}
	})
	t.Run("fallback", func(t *testing.T) {
		e := interopSetup(t)
		secretFile := e.file(t, "coturn.secret", coturnSecret+"\n")
		ice := e.serveICE(t, nil, "--identity-header", "X-User", "--coturn-secret-file", secretFile, "--coturn-url", coturn.URLs()[0], "--coturn-mode", "fallback")
		_, answer := get(t, ice+"/", http.Header{"X-User": {"alice"}})
		if strings.Contains(string(answer), coturn.Addr) {
			t.Errorf("fallback mode listed coturn while Cloudflare works: %s", answer)
		}
		e.fake.Close()
		status, answer := get(t, ice+"/", http.Header{"X-User": {"bob"}})
		if status != 200 || strings.Contains(string(answer), e.relay.UDPAddr) {
			t.Fatalf("with the fake stopped: %d %s, want coturn's servers only", status, answer)
		}
		report, err := cfturnCheck(t, e.bin, answer)
		if err != nil || len(report.okTURN()) != 1 {
			t.Fatalf("cfturn check on the fallback answer: %v %+v", err, report)
		}
		_, metrics := get(t, ice+"/metrics", nil)
		if !bytes.Contains(metrics, []byte("cfturn_ice_coturn_fallbacks_total 1")) {
			t.Errorf("the fallback is not counted in /metrics:\n%s", grepLines(metrics, "coturn"))
		}
	})
	t.Run("removed secret", func(t *testing.T) {
		e := interopSetup(t)
		// serve-ice still mints with a secret coturn no longer accepts.
		secretFile := e.file(t, "coturn.secret", coturnOldSecret+"\n")
		ice := e.serveICE(t, nil, "--coturn-secret-file", secretFile, "--coturn-url", coturn.URLs()[0], "--coturn-mode", "merge")
		_, answer := get(t, ice+"/", nil)
		report, _ := cfturnCheck(t, e.bin, answer)
		checked := false
		for _, r := range report.Results {
			if r.URL == coturn.URLs()[0] {
				checked = true
				if r.Result != "auth failed" {
					t.Errorf("coturn with a removed secret: %s (%s), want auth failed", r.Result, r.Detail)
				}
			}
		}
		if !checked {
			t.Fatalf("coturn's URL is not in the answer: %s", answer)
		}
	})
}

func grepLines(b []byte, word string) string {
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Headless Chromium connects relay-only through coturn when serve-ice falls back to it: the
// Cloudflare fake is stopped before the page asks for credentials.
func TestBrowserThroughCoturnFallback(t *testing.T) {
	chromium := needChromium(t)
	coturn := coturnserver.Start(t, coturnserver.Options{Secrets: []string{coturnSecret}})
	e := interopSetup(t)
	secretFile := e.file(t, "coturn.secret", coturnSecret+"\n")
	ice := e.serveICE(t, nil, "--example-page", "--coturn-secret-file", secretFile, "--coturn-url", coturn.URLs()[0], "--coturn-mode", "fallback")
	e.fake.Close()
	browser := startBrowser(t, chromium)
	res := runPage(t, browser, ice+"/example/")
	if !res.OK {
		t.Fatalf("the page failed: %s %v\ncoturn log:\n%s", res.Error, res.Errors, coturn.LogTail(20))
	}
	for name, typ := range map[string]string{
		"A local": res.LocalCandidateType, "A remote": res.RemoteCandidateType,
		"B local": res.PeerBLocalCandidateType, "B remote": res.PeerBRemoteCandidateType,
	} {
		if typ != "relay" {
			t.Errorf("peer %s candidate is %q, want relay: %+v", name, typ, res)
		}
	}
	// The username is coturn's <expiry>:<pseudonym>, not a Cloudflare one.
	if exp, _, ok := strings.Cut(res.TurnUser, ":"); !ok || len(exp) != 10 {
		t.Errorf("TURN username %q is not coturn's <expiry>:<pseudonym>", res.TurnUser)
	}
	t.Logf("Chromium connected through coturn at %s: %s, round trip %.2f ms", coturn.Addr, res.RelayProtocol, res.RTTms)
}
