package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Messages a new user meets on the way through the README (issue 17).
func TestWalkthroughMessages(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	const secretValue = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		// A mistyped command followed by flags is a mistyped command, not an unknown flag.
		{nil, []string{"ice-server", "--key-id", "x"}, 2, `unknown command "ice-server"; did you mean ice-servers?`},
		{nil, []string{"--json", "ice-servr", "--key-id", "x"}, 2, `unknown command "ice-servr"; did you mean ice-servers?`},
		{nil, []string{"keys", "create", "prod"}, 2, "keys create takes no arguments: to name the key prod, pass --name prod"},
		{nil, []string{"keys", "create", "my key"}, 2, "pass --name 'my key'"},
		{nil, []string{"ice-servers", "--key-id", "x", "--key-secret", secretValue}, 2,
			"unknown flag: --key-secret: cfturn takes the TURN key's secret only from CFTURN_KEY_SECRET or --key-secret-file FILE, never as a flag value"},
		// An empty $KEY_ID is not a missing --key-id.
		{nil, []string{"ice-servers", "--key-id", ""}, 2, "--key-id is empty: pass the TURN key's ID (is the shell variable unset?"},
		{nil, []string{"check", "--key-id", ""}, 2, "--key-id is empty"},
		{nil, []string{"check"}, 2, "nothing to check: pass --key-id ID"},
		// A bare port.
		{nil, []string{"serve-ice", "--addr", "8090", "--key-id", strings.Repeat("a", 32)}, 2, `--addr "8090": use HOST:PORT, e.g. 127.0.0.1:8090`},
		{nil, []string{"serve-fake", "--addr", "8090"}, 2, `--addr "8090": use HOST:PORT, e.g. 127.0.0.1:8090`},
		// Account IDs are checked as strictly as key IDs.
		{nil, []string{"--account-id", "nope", "keys", "list"}, 2, `account ID "nope" has 'n' at character 1; Cloudflare account IDs are 32 hex characters`},
		{map[string]string{"CLOUDFLARE_ACCOUNT_ID": strings.Repeat("a", 31)}, []string{"keys", "list"}, 2, "CLOUDFLARE_ACCOUNT_ID: invalid argument: account ID"},
	} {
		r := cfturn(t, srv, tc.env, tc.args...)
		r.check(t, tc.code)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, secretValue) {
			t.Errorf("%q: the secret given as a flag value reached stderr", tc.args)
		}
	}
	if r := cfturn(t, srv, nil, "check", "--help"); strings.Contains(r.stdout, "required") || !strings.Contains(r.stdout, "(or --file)") {
		t.Errorf("check --help:\n%s", r.stdout)
	}
}

// keys list and keys delete say what happened; version is a command too.
func TestKeysSayWhatHappened(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	r := cfturn(t, srv, nil, "keys", "list")
	r.check(t, 0)
	if r.stdout != "no TURN keys in account "+srv.AccountID()+"\n" {
		t.Errorf("empty keys list: %q", r.stdout)
	}
	r = cfturn(t, srv, nil, "keys", "list", "--json")
	r.check(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty keys list --json: %q", r.stdout)
	}

	key := createKey(t, srv)
	r = cfturn(t, srv, nil, "keys", "delete", "--yes", key.ID)
	r.check(t, 0)
	if want := `deleted key ` + key.ID + ` (name ""); credentials minted from it stop working` + "\n"; r.stdout != want {
		t.Errorf("keys delete --yes: %q, want %q", r.stdout, want)
	}
	if len(srv.Keys(srv.AccountID())) != 0 {
		t.Error("the key is still there")
	}

	r = cfturn(t, srv, nil, "version")
	r.check(t, 0)
	if r.stdout != "cfturn version "+turn.Version+"\n" {
		t.Errorf("version: %q", r.stdout)
	}
	r = cfturn(t, srv, nil, "version", "--json")
	r.check(t, 0)
	var v map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["version"] != turn.Version {
		t.Errorf("version --json: %v %q", err, r.stdout)
	}
}

// Every command's help has examples.
func TestEveryCommandHasExamples(t *testing.T) {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	n := 0
	walk(a.rootCommand(), func(cmd *cobra.Command) {
		if cmd.Hidden {
			return
		}
		n++
		if strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%q has no Examples in its help", cmd.CommandPath())
		}
	})
	if n < 15 {
		t.Errorf("walked %d commands", n)
	}
	srv := turntest.NewServer()
	defer srv.Close()
	if r := cfturn(t, srv, nil, "keys", "create", "--help"); !strings.Contains(r.stdout, "Examples:\n  cfturn keys create --name prod --out turn-key.secret") {
		t.Errorf("keys create --help:\n%s", r.stdout)
	}
}

// demo --json prints one JSON object per step, credentials redacted.
func TestDemoJSON(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"demo", "--json"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var steps []int
	var last demoStep
	for line := range strings.Lines(stdout.String()) {
		var s demoStep
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("not a JSON line: %v: %q", err, line)
		}
		if s.Step > 0 {
			steps = append(steps, s.Step)
		}
		last = s
	}
	if len(steps) != 7 || steps[6] != 7 {
		t.Errorf("steps %v, want 1 to 7", steps)
	}
	if last.Result["done"] != true || last.Result["install"] != "go install ./cmd/cfturn" {
		t.Errorf("last line: %+v", last)
	}
	if regexp.MustCompile(`[0-9a-f]{64}`).MatchString(stdout.String()) || !strings.Contains(stdout.String(), `"credential":"[REDACTED]"`) {
		t.Errorf("demo --json shows a secret or no redacted credential:\n%s", stdout.String())
	}
}

// The example page's URL is in serve-ice's banner, in text and JSON.
func TestServeICEBannerNamesExamplePage(t *testing.T) {
	e := startServeICE(t, "--example-page")
	if !strings.Contains(e.stdout.String(), "the example page is at "+e.url+"example/\n") {
		t.Errorf("banner:\n%s", e.stdout)
	}
	resp, err := http.Get(e.url + "example/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the page's URL answered %s", resp.Status)
	}
}

// A Ctrl-C while serve-ice shuts down says what it waits for, and a second one stops it at once,
// with the request still in flight.
func TestServeICESecondInterrupt(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "too late", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	defer close(release)

	stdoutR, stdoutW := io.Pipe()
	stderrR, stderrW := io.Pipe()
	interrupts := make(chan os.Signal, 1)
	env := map[string]string{"CFTURN_KEY_SECRET": strings.Repeat("k", 64)}
	a := &app{stdin: strings.NewReader(""), stdout: stdoutW, stderr: stderrW, getenv: func(k string) string { return env[k] },
		interrupts: interrupts}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"--json", "--ice-base-url", upstream.URL + "/v1", "serve-ice", "--addr", "127.0.0.1:0",
			"--key-id", strings.Repeat("a", 32), "--skip-startup-check"})
		stdoutW.Close()
		stderrW.Close()
	}()
	lines := make(chan string, 100) // stderr, read from the start: the server logs before its banner
	go func() {
		sc := bufio.NewScanner(stderrR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner map[string]string
	if err := json.NewDecoder(stdoutR).Decode(&banner); err != nil || banner["url"] == "" {
		t.Fatalf("serve-ice --json banner: %v %v", err, banner)
	}
	go io.Copy(io.Discard, stdoutR)

	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get(banner["url"])
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	<-arrived // the request is in flight, waiting on the upstream
	cancel()  // the first Ctrl-C
	if !waitLine(lines, "cfturn: shutting down: waiting for 1 request to finish (Ctrl-C again to quit)") {
		t.Fatal("no word of the request it waits for")
	}
	interrupts <- os.Interrupt // the second
	select {
	case code := <-done:
		if code == 0 {
			t.Error("exit 0 after a second Ctrl-C cut off a request")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-ice still running 10s after the second Ctrl-C")
	}
	var rest []string
	for line := range lines {
		rest = append(rest, line)
	}
	if !strings.Contains(strings.Join(rest, "\n"), "cfturn: interrupted again: stopped at once, cutting off 1 request in flight") {
		t.Errorf("stderr after the second Ctrl-C:\n%s", strings.Join(rest, "\n"))
	}
	if err := <-answered; err == nil {
		t.Error("the request in flight was answered, not cut off")
	}
}

// waitLine reads lines until one contains want, and reports whether one did within 10s.
func waitLine(lines <-chan string, want string) bool {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return false
			}
			if strings.Contains(line, want) {
				return true
			}
		case <-timeout:
			return false
		}
	}
}
