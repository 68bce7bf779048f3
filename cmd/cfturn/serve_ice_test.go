package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

type serveICEEnv struct {
	srv            *turntest.Server
	key            turn.KeyWithSecret
	url            string
	stdout, stderr *syncbuf.Buffer
}

// startServeICE runs serve-ice in-process against a fresh fake until the test ends.
func startServeICE(tb testing.TB, args ...string) *serveICEEnv {
	tb.Helper()
	srv := turntest.NewServer()
	tb.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "serve-ice"})
	if err != nil {
		tb.Fatal(err)
	}
	return startServeICEOn(tb, srv, key, nil, args...)
}

// startServeICEOn runs serve-ice in-process against srv with key, and env besides the key's
// secret, until the test ends.
func startServeICEOn(tb testing.TB, srv *turntest.Server, key turn.KeyWithSecret, extraEnv map[string]string, args ...string) *serveICEEnv {
	tb.Helper()
	e := &serveICEEnv{srv: srv, key: key, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret.Reveal()}
	maps.Copy(env, extraEnv)
	go func() {
		done <- run(ctx, append([]string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID}, args...),
			strings.NewReader(""), e.stdout, e.stderr, func(k string) string { return env[k] })
	}()
	re := regexp.MustCompile(`on (http://\S+) `)
	for deadline := time.Now().Add(10 * time.Second); e.url == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(e.stdout.String()); m != nil {
			e.url = m[1]
		}
	}
	if e.url == "" {
		cancel()
		tb.Fatalf("serve-ice printed no URL:\nstdout: %s\nstderr: %s", e.stdout, e.stderr)
	}
	tb.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				tb.Errorf("serve-ice exit %d after Ctrl-C", code)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("serve-ice did not stop")
		}
		for _, s := range []string{key.Secret.Reveal(), srv.Token()} {
			if strings.Contains(e.stderr.String()+e.stdout.String(), s) {
				tb.Error("a secret reached the output")
			}
		}
	})
	return e
}

func (e *serveICEEnv) get(tb testing.TB, path, user string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", e.url+strings.TrimPrefix(path, "/"), nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Item 11: health, readiness, metrics and one JSON log line per upstream failure.
func TestServeICEOperability(t *testing.T) {
	e := startServeICE(t, "--identity-header", "X-User", "--log-format", "json")
	if code, _ := e.get(t, "/healthz", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := e.get(t, "/readyz", ""); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	for range 2 {
		if code, body := e.get(t, "/", "alice"); code != 200 {
			t.Fatalf("ICE: %d %s", code, body)
		}
	}
	// Two faults: should /readyz come after the one-second backoff, its own probe fails too.
	e.srv.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 500, Count: 2})
	if code, _ := e.get(t, "/", "bob"); code != 502 {
		t.Errorf("upstream 500: %d", code)
	}
	logs := e.stderr.String() // the failure is logged before it is answered
	_, metrics := e.get(t, "/metrics", "")
	if code, body := e.get(t, "/readyz", ""); code != 503 || !strings.Contains(body, "server") {
		t.Errorf("/readyz after a failure: %d %s", code, body)
	}
	for _, want := range []string{
		"cfturn_ice_mints_total 3", // start-up check, alice, bob
		"cfturn_ice_cache_hits_total 1",
		`cfturn_ice_upstream_errors_total{class="server"} 1`,
		`cfturn_ice_refusals_total{reason="upstream_error"} 1`,
		`cfturn_ice_mint_duration_seconds_count{class="ok"} 2`,
		"cfturn_ice_upstream_in_flight 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var failures int
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if rec["msg"] == "iceserve: upstream failure" && rec["class"] == "server" {
			failures++
		}
	}
	if failures != 1 {
		t.Errorf("%d upstream failure lines, want 1:\n%s", failures, logs)
	}
}

// Item 10: a wrong key secret or an unreachable upstream fails before listening.
func TestServeICEStartupCheck(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	for name, env := range map[string]map[string]string{
		"wrong secret": {"CFTURN_KEY_SECRET": strings.Repeat("0", 64)},
		"no upstream":  {"CFTURN_KEY_SECRET": key.Secret},
	} {
		base := srv.APIBaseURL
		if name == "no upstream" {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			base = "http://" + l.Addr().String() + "/client/v4"
			l.Close()
		}
		var stdout, stderr syncbuf.Buffer
		code := run(context.Background(), []string{"--base-url", base, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID},
			strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
		if code != 1 || !strings.Contains(stderr.String(), "start-up mint failed") || strings.Contains(stdout.String(), "http://") {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, stdout.String(), stderr.String())
		}
	}
	// --skip-startup-check starts anyway and reports not ready once a mint fails.
	e := startServeICE(t, "--skip-startup-check")
	e.srv.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 401, Count: 2})
	if code, _ := e.get(t, "/", ""); code != 502 {
		t.Errorf("first request: %d", code)
	}
	if code, _ := e.get(t, "/readyz", ""); code != 503 {
		t.Errorf("/readyz: %d", code)
	}
}

// Item 10: values that used to start and fail open are refused with exit 2 and a clear message.
func TestServeICEConfigChecks(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ttl", "49h"}, "--ttl"},
		{[]string{"--ttl", "0"}, "--ttl"},
		{[]string{"--rate", "NaN"}, "--rate"},
		{[]string{"--rate", "1e-9"}, "RatePerMinute"},
		{[]string{"--rate", "+Inf"}, "RatePerMinute"},
		{[]string{"--mint-rate", "NaN"}, "MintsPerSecond"},
		{[]string{"--burst", "0"}, "--burst"},
		{[]string{"--network-share", "0"}, "--network-share"},
		{[]string{"--network-share", "1.5"}, "--network-share"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
		{[]string{"--allow-origin", "http://localhost:3000/"}, `"http://localhost:3000"`},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--allow-credentials", "--allow-origin", "*"}, "AllowCredentials"},
	} {
		r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret}, append([]string{"serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want 2 naming %s", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}

// Item 10: --timeout 0 means the default everywhere, and the timeout bounds a half-sent body.
func TestServeICETimeout(t *testing.T) {
	e := startServeICE(t, "--timeout", "0")
	if !strings.Contains(e.stderr.String(), "read_timeout=10s request_timeout=10s") {
		t.Errorf("--timeout 0 did not mean the default for both:\n%s", e.stderr)
	}
	e = startServeICE(t, "--timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(e.url, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The server answers (the handler reads no body) and then drops the connection when the
	// rest of the body does not come within the timeout.
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("a half-sent body held the connection: %v", err)
	}
}

// On loopback, serve-ice answers only loopback Host names (a DNS-rebinding page's Host is
// refused), --allowed-host adds names, and connections beyond --max-conns are closed at once.
func TestServeICEHostsAndConnections(t *testing.T) {
	e := startServeICE(t, "--identity-header", "X-User", "--max-conns", "3")
	// get answers the status, or 0 when the server closed the connection unanswered.
	get := func(host string) int {
		req, _ := http.NewRequest("GET", e.url, nil)
		req.Host = host
		req.Header.Set("X-User", "alice")
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("evil.example:80"); code != http.StatusMisdirectedRequest {
		t.Errorf("a rebinding page's Host: %d, want 421", code)
	}
	if code := get("localhost"); code != 200 {
		t.Errorf("Host localhost: %d", code)
	}
	if !strings.Contains(e.stderr.String(), "DNS rebinding") {
		t.Error("the refused Host was not logged")
	}

	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "http://"), "/")
	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// The server accepts the fourth connection and closes it at once: a read ends, no answer.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("fourth connection: read %d, %v; want it closed by the server", n, err)
	}
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for get("127.0.0.1") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("slots were not freed when the idle connections closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, metrics := e.get(t, "/metrics", "")
	if !strings.Contains(metrics, "cfturn_serve_connections_refused_total") {
		t.Error("/metrics lacks the refused connections")
	}

	other := startServeICE(t, "--identity-header", "X-User", "--allowed-host", "app.example")
	req, _ := http.NewRequest("GET", other.url, nil)
	req.Host = "app.example:443"
	req.Header.Set("X-User", "bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("--allowed-host app.example: %d", resp.StatusCode)
	}
}

// Issue 16, item 1: with --admin-addr, /readyz and /metrics are served there and not on the
// public listener, which keeps serving credentials and /healthz.
func TestServeICEAdminAddr(t *testing.T) {
	e := startServeICE(t, "--identity-header", "X-User", "--admin-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`admin endpoints.* url=(http://\S+)`).FindStringSubmatch(e.stderr.String())
	if m == nil {
		t.Fatalf("no admin URL logged:\n%s", e.stderr)
	}
	admin := &serveICEEnv{url: m[1]}
	if !strings.Contains(e.stdout.String(), "/healthz, /readyz and /metrics are at "+m[1]) {
		t.Errorf("the banner does not show the admin URL:\n%s", e.stdout)
	}
	for _, tc := range []struct {
		on   *serveICEEnv
		path string
		want int
		body string
	}{
		{e, "/", 200, "iceServers"},
		{e, "/healthz", 200, "ok"},
		{e, "/readyz", 404, ""},
		{e, "/metrics", 404, ""},
		{admin, "/readyz", 200, "ready"},
		{admin, "/metrics", 200, "cfturn_ice_mints_total 2"}, // the start-up check and the caller
		{admin, "/healthz", 200, "ok"},
		{admin, "/", 404, ""},
	} {
		code, body := tc.on.get(t, tc.path, "alice")
		if code != tc.want || !strings.Contains(body, tc.body) {
			t.Errorf("%s%s: %d %.200q, want %d with %q", tc.on.url, tc.path, code, body, tc.want, tc.body)
		}
	}
}

// Behind the identity proxy, --client-ip-header gives --network-share the client's network.
func TestServeICEClientIPHeader(t *testing.T) {
	e := startServeICE(t, "--identity-header", "X-User", "--client-ip-header", "X-Real-IP", "--mint-burst", "8", "--network-share", "0.125")
	for i, tc := range []struct {
		ip   string
		want int
	}{{"192.0.2.1", 200}, {"192.0.2.2", 503}, {"198.51.100.1", 200}} {
		req, _ := http.NewRequest("POST", e.url, nil)
		req.Header.Set("X-User", fmt.Sprint("user-", i))
		req.Header.Set("X-Real-IP", tc.ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("X-Real-IP %s: %d, want %d", tc.ip, resp.StatusCode, tc.want)
		}
	}
}
