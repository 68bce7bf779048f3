package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// fakeWithRelay starts the fake with a relay attached, as serve-fake does; both close when the
// test ends.
func fakeWithRelay(t *testing.T) (*turntest.Server, *turnrelay.Relay) {
	t.Helper()
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return srv, relay
}

// runWithStdin runs the CLI with stdin and the environment given.
func runWithStdin(stdin string, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code, stdout.String(), stderr.String()}
}

// mintJSON mints credentials with the CLI and returns its JSON output.
func mintJSON(t *testing.T, srv *turntest.Server, key createdKey) string {
	t.Helper()
	r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret}, "ice-servers", "--key-id", key.ID, "--ttl", "10m")
	r.check(t, 0)
	return r.stdout
}

func TestCheckCommandMints(t *testing.T) {
	srv, relay := fakeWithRelay(t)
	key := createKey(t, srv)
	r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret}, "check", "--key-id", key.ID)
	r.check(t, 0)
	for _, want := range []string{
		"URL", "TRANSPORT", "RESULT", "RTT", "ADDRESS",
		"stun:" + relay.UDPAddr, "turn:" + relay.UDPAddr + "?transport=udp", "turn:" + relay.TCPAddr + "?transport=tcp",
		"checked in",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^\S+\s+(udp|tcp)\s+ok\s+\S+\s+127\.0\.0\.1:\d+$`).FindAllString(r.stdout, -1)); n != 3 {
		t.Errorf("%d rows ok with an RTT and an address, want 3:\n%s", n, r.stdout)
	}
	// The credential minted for the check is revoked once it is done.
	if n := srv.Requests()["revokeIceCredential"]; n != 1 {
		t.Errorf("%d revocations, want 1", n)
	}
}

func TestCheckCommandFileAndStdin(t *testing.T) {
	srv, _ := fakeWithRelay(t)
	key := createKey(t, srv)
	ice := mintJSON(t, srv, key)

	path := filepath.Join(t.TempDir(), "ice.json")
	if err := os.WriteFile(path, []byte(ice), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runWithStdin("", nil, "check", "--file", path, "--json")
	r.check(t, 0)
	var out struct {
		Results []struct {
			URL, Transport, Result, RelayedAddress string
			RTTms                                  float64 `json:"rttMs"`
		}
		TURNWorks bool `json:"turnWorks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r.stdout)
	}
	if !out.TURNWorks || len(out.Results) != 3 || out.Results[1].Result != "ok" || out.Results[1].RTTms <= 0 || out.Results[1].RelayedAddress == "" {
		t.Errorf("check --json: %+v", out)
	}

	// The same from stdin, after revoking the credential: TURN fails, exit 1.
	var ids struct {
		ICEServers []struct{ Username, Credential string } `json:"iceServers"`
	}
	json.Unmarshal([]byte(ice), &ids)
	revoke := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret}, "ice-servers", "revoke", ids.ICEServers[1].Username, "--key-id", key.ID)
	revoke.check(t, 0)
	r = runWithStdin(ice, nil, "check", "--file", "-")
	r.check(t, 1)
	if strings.Count(r.stdout, "auth failed") < 2 || !strings.Contains(r.stderr, "no TURN URL carried a packet") {
		t.Errorf("revoked credential:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, ids.ICEServers[1].Credential) {
		t.Errorf("check printed the credential")
	}
}

func TestCheckCommandBadInput(t *testing.T) {
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"check"}, "nothing to check"},
		{"{", []string{"check", "--file", "-"}, `want {"iceServers": [...]}`},
		{`{"iceServers": []}`, []string{"check", "--file", "-"}, "no URLs"},
		{`{"iceServers": [{"urls": ["ftp://x"]}]}`, []string{"check", "--file", "-"}, `scheme "ftp"`},
		{"", []string{"check", "--file", "/nonexistent/ice.json"}, "no such file"},
		{"", []string{"check", "--file", "-", "--key-id", "k"}, "not both"},
		{`{"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}`, []string{"check", "--file", "-", "--timeout", "-1s"}, "--timeout -1s: want a duration above 0"},
		{`{"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}`, []string{"check", "--file", "-", "--timeout", "0s"}, "--timeout 0s: want a duration above 0"},
		{`{"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}`, []string{"check", "--file", "-", "--timeout", "1000000h"}, "at most 5m0s"},
		{`{"iceServers": [{"urls": ["turn:user:secretpw@127.0.0.1:3478"]}]}`, []string{"check", "--file", "-"}, "[REDACTED]@127.0.0.1:3478"},
	} {
		r := runWithStdin(tc.stdin, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v <<< %q: exit %d, stderr %q; want 2 and %q", tc.args, tc.stdin, r.code, r.stderr, tc.want)
		}
	}
	if r := runWithStdin(`{"iceServers": [{"urls": ["turn:user:secretpw@127.0.0.1:3478"]}]}`, nil, "check", "--file", "-"); strings.Contains(r.stderr+r.stdout, "secretpw") {
		t.Errorf("a password in a URL reached the output: %q", r.stderr)
	}
	// A URL with terminal escapes is printed escaped.
	r := runWithStdin(`{"iceServers": [{"urls": ["turn:127.0.0.1:53\u001b[2J"]}]}`, nil, "check", "--file", "-", "--timeout", "100ms")
	if r.code != 2 || strings.Contains(r.stderr, "\x1b") {
		t.Errorf("escape in a URL: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDemoShowsTheDataPlane(t *testing.T) {
	r := runWithStdin("", nil, "demo")
	r.check(t, 0)
	for _, pattern := range []string{
		`they open the fake's TURN relay`,
		`turn:127\.0\.0\.1:\d+\?transport=udp\s+ok, relayed address 127\.0\.0\.1:\d+, round trip \S+`,
		`turn:127\.0\.0\.1:\d+\?transport=tcp\s+ok, relayed address 127\.0\.0\.1:\d+, round trip \S+`,
		`(?s)the relay now refuses it:\s+turn:\S+\s+auth failed`,
	} {
		if !regexp.MustCompile(pattern).MatchString(r.stdout) {
			t.Errorf("demo output does not match %s:\n%s", pattern, r.stdout)
		}
	}
}

func TestServeFakeRelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve-fake", "--json", "--addr", "127.0.0.1:0"}, strings.NewReader(""), out, io.Discard, func(string) string { return "" })
	}()
	udp := waitFor(t, out, `"relayUDPAddr": "(127\.0\.0\.1:\d+)"`)
	if udp == "" || !strings.Contains(out.String(), `"relayTCPAddr": "127.0.0.1:`) {
		cancel()
		t.Fatalf("serve-fake --json printed no relay:\n%s", out.String())
	}
	stop(t, "serve-fake", cancel, done)

	ctx, cancel = context.WithCancel(context.Background())
	text := &syncbuf.Buffer{}
	go func() {
		done <- run(ctx, []string{"serve-fake", "--addr", "127.0.0.1:0", "--no-relay"}, strings.NewReader(""), text, io.Discard, func(string) string { return "" })
	}()
	if waitFor(t, text, `TURN relay\s+(off)`) == "" {
		t.Errorf("serve-fake --no-relay:\n%s", text.String())
	}
	stop(t, "serve-fake", cancel, done)
}

func TestServeICEExamplePage(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret, "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	get := func(url string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, withPage := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncbuf.Buffer{}
		done := make(chan int)
		args := []string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID}
		if withPage {
			args = append(args, "--example-page")
		}
		go func() {
			done <- run(ctx, args, strings.NewReader(""), out, io.Discard, func(k string) string { return env[k] })
		}()
		url := waitFor(t, out, `on (http://\S+) `)
		if url == "" {
			cancel()
			t.Fatalf("serve-ice printed no URL:\n%s", out.String())
		}
		status, ctype, body := get(url + "example/")
		isPage := status == 200 && strings.HasPrefix(ctype, "text/html") && strings.Contains(body, "Does TURN work from here?")
		if isPage != withPage {
			t.Errorf("--example-page=%v: GET /example/ = %d %s %.80q", withPage, status, ctype, body)
		}
		if status, _, body := get(url); status != 200 || !strings.Contains(body, `"iceServers"`) {
			t.Errorf("--example-page=%v: GET / = %d %.80q", withPage, status, body)
		}
		stop(t, "serve-ice", cancel, done)
	}
}

func TestCheckTLSAgainstServeFake(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "relay.pem")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve-fake", "--json", "--addr", "127.0.0.1:0", "--token", "tls-token", "--relay-tls", "--relay-cert-out", pem},
			strings.NewReader(""), out, io.Discard, func(string) string { return "" })
	}()
	defer stop(t, "serve-fake", cancel, done)
	base := waitFor(t, out, `"apiBaseURL": "(\S+)"`)
	if base == "" || !strings.Contains(out.String(), `"relayTLSAddr": "127.0.0.1:`) {
		t.Fatalf("serve-fake --relay-tls --json:\n%s", out.String())
	}
	account := waitFor(t, out, `"accountID": "(\S+)"`)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "tls-token", "CLOUDFLARE_ACCOUNT_ID": account}
	r := runWithStdin("", env, "--base-url", base, "keys", "create", "--json")
	r.check(t, 0)
	var key createdKey
	json.Unmarshal([]byte(r.stdout), &key)
	env["CFTURN_KEY_SECRET"] = key.Secret

	r = runWithStdin("", env, "--base-url", base, "check", "--key-id", key.ID, "--ca-file", pem)
	r.check(t, 0)
	if !regexp.MustCompile(`(?m)^turns:127\.0\.0\.1:\d+\?transport=tcp\s+tls\s+ok\s`).MatchString(r.stdout) {
		t.Errorf("turns: row not ok with --ca-file:\n%s", r.stdout)
	}
	// Without the certificate, TLS fails and says why; the other transports still work: exit 0.
	r = runWithStdin("", env, "--base-url", base, "check", "--key-id", key.ID)
	r.check(t, 0)
	if !regexp.MustCompile(`(?m)^turns:\S+\s+tls\s+failed\s`).MatchString(r.stdout) || !strings.Contains(r.stdout, "TLS: ") {
		t.Errorf("turns: without --ca-file:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "(hint: to trust a private or self-signed certificate, such as serve-fake --relay-cert-out's, pass --ca-file FILE)") {
		t.Errorf("no --ca-file hint on an unknown authority:\n%s", r.stdout)
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"check", "--key-id", key.ID, "--ca-file", filepath.Join(dir, "missing.pem")}},
		{[]string{"check", "--key-id", key.ID, "--ca-file", filepath.Join(dir, "empty.pem")}},
		{[]string{"serve-fake", "--no-relay", "--relay-tls"}},
		{[]string{"serve-fake", "--relay-cert-out", pem}},
	} {
		os.WriteFile(filepath.Join(dir, "empty.pem"), []byte("not a certificate"), 0o600)
		if r := runWithStdin("", env, append([]string{"--base-url", base}, tc.args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", tc.args, r.code, r.stderr)
		}
	}
}
