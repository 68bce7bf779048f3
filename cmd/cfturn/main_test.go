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
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

type result struct {
	code           int
	stdout, stderr string
}

// cfturn runs the CLI in-process against srv, with the environment a user would set.
func cfturn(t *testing.T, srv *turntest.Server, env map[string]string, args ...string) result {
	t.Helper()
	full := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	for k, v := range env {
		full[k] = v
	}
	var stdout, stderr bytes.Buffer
	args = append([]string{"--base-url", srv.APIBaseURL}, args...)
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return full[k] })
	return result{code, stdout.String(), stderr.String()}
}

// createKey creates a key with the CLI and returns it with its secret.
func createKey(t *testing.T, srv *turntest.Server) createdKey {
	t.Helper()
	r := cfturn(t, srv, nil, "keys", "create", "--json")
	r.check(t, 0)
	var key createdKey
	if err := json.Unmarshal([]byte(r.stdout), &key); err != nil || len(key.Secret) != 64 {
		t.Fatalf("keys create --json: %v\n%s", err, r.stdout)
	}
	return key
}

func (r result) check(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("error is not one line:\n%s", r.stderr)
	}
}

func TestKeysCommands(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()

	r := cfturn(t, srv, nil, "keys", "create", "--name", "cli-key", "--json")
	r.check(t, 0)
	var created createdKey
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatalf("create --json: %v\n%s", err, r.stdout)
	}
	if len(created.ID) != 32 || len(created.Secret) != 64 || created.Name != "cli-key" || created.Created.IsZero() {
		t.Fatalf("create --json = %+v", created)
	}
	if !strings.Contains(r.stderr, "only time") {
		t.Errorf("no warning that the secret is shown once: %q", r.stderr)
	}

	r = cfturn(t, srv, nil, "keys", "create", "--name", "table-key")
	r.check(t, 0)
	if !regexp.MustCompile(`(?m)^SECRET\s+[0-9a-f]{64}$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "table-key") {
		t.Errorf("create table output:\n%s", r.stdout)
	}

	r = cfturn(t, srv, nil, "keys", "list", "--json")
	r.check(t, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("list --json: %v %s", err, r.stdout)
	}
	for _, k := range list {
		if _, ok := k["key"]; ok {
			t.Error("list --json shows a secret")
		}
		for _, f := range []string{"uid", "name", "created", "modified"} {
			if _, ok := k[f]; !ok {
				t.Errorf("list --json entry lacks %q: %v", f, k)
			}
		}
	}
	r = cfturn(t, srv, nil, "keys", "list")
	r.check(t, 0)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Errorf("list table:\n%s", r.stdout)
	}

	r = cfturn(t, srv, nil, "keys", "get", created.ID, "--json")
	r.check(t, 0)
	var got createdKey
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != created.ID || got.Secret != "" {
		t.Fatalf("get --json: %v %s", err, r.stdout)
	}

	r = cfturn(t, srv, nil, "keys", "rename", created.ID, "new-name", "--json")
	r.check(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Name != "new-name" || !got.Modified.After(created.Modified) {
		t.Fatalf("rename --json: %v %s", err, r.stdout)
	}

	r = cfturn(t, srv, nil, "keys", "delete", created.ID)
	r.check(t, 2)
	if !strings.Contains(r.stderr, "--yes") || len(srv.Keys(srv.AccountID())) != 2 {
		t.Fatalf("delete without --yes off a terminal: %q, keys %d", r.stderr, len(srv.Keys(srv.AccountID())))
	}
	cfturn(t, srv, nil, "keys", "delete", "--yes", created.ID).check(t, 0)
	if len(srv.Keys(srv.AccountID())) != 1 {
		t.Error("delete --yes did not delete")
	}

	r = cfturn(t, srv, nil, "keys", "get", created.ID)
	r.check(t, 1)
	if !strings.HasPrefix(r.stderr, "cfturn: get key: 404 Not Found: ") {
		t.Errorf("API error line: %q", r.stderr)
	}
}

func TestCreateOutFile(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "key.secret")

	r := cfturn(t, srv, nil, "keys", "create", "--out", path)
	r.check(t, 0)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	secret := strings.TrimSpace(string(b))
	if len(secret) != 64 || strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("secret file holds %d chars; output: %s %s", len(secret), r.stdout, r.stderr)
	}

	// Never overwrite, and create no key whose secret could not be stored.
	r = cfturn(t, srv, nil, "keys", "create", "--out", path)
	r.check(t, 2)
	if !strings.Contains(r.stderr, "file exists") || len(srv.Keys(srv.AccountID())) != 1 {
		t.Errorf("overwrite attempt: %q, keys %d", r.stderr, len(srv.Keys(srv.AccountID())))
	}
	if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
		t.Error("secret file changed")
	}

	// A failed create leaves no empty file behind.
	bad := filepath.Join(t.TempDir(), "never.secret")
	srv.InjectFault(turntest.Fault{Operation: "createTurnKey", Status: 403})
	cfturn(t, srv, nil, "keys", "create", "--out", bad).check(t, 1)
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("failed create left %s behind", bad)
	}
}

func TestICECommands(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret}

	r := cfturn(t, srv, env, "ice-servers", "--key-id", key.ID, "--ttl", "10m", "--custom-identifier", "user4523958")
	r.check(t, 0)
	var ice struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ice); err != nil || len(ice.ICEServers) != 2 || ice.ICEServers[1].Credential == "" {
		t.Fatalf("ice-servers: %v\n%s", err, r.stdout)
	}
	if tag, _ := srv.CustomIdentifier(ice.ICEServers[1].Username); tag != "user4523958" {
		t.Errorf("--custom-identifier reached the fake as %q", tag)
	}

	secretFile := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secretFile, []byte(key.Secret+"\n"), 0o600)
	r = cfturn(t, srv, nil, "ice-servers", "revoke", ice.ICEServers[1].Username, "--key-id", key.ID, "--key-secret-file", secretFile, "--json")
	r.check(t, 0)
	if !srv.Revoked(ice.ICEServers[1].Username) || strings.TrimSpace(r.stdout) != "{\n  \"revoked\": true\n}" {
		t.Errorf("revoke: %q, revoked %v", r.stdout, srv.Revoked(ice.ICEServers[1].Username))
	}

	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"ice-servers", "--key-id", key.ID}, "CFTURN_KEY_SECRET"},
		{env, []string{"ice-servers"}, "--key-id is required"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--ttl", "0s"}, "TTL 0s must be positive"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--ttl", "1500ms"}, "not a whole number of seconds"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--ttl", "soon"}, "invalid argument \"soon\""},
		{env, []string{"ice-servers", "--key-id", "short"}, "key ID is 5 characters long"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--key-secret", "x"}, "unknown flag: --key-secret"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--ttl", "49h"}, "48h"},
		{env, []string{"ice-servers", "--key-id", key.ID, "--custom-identifier", "a\nb"}, "--custom-identifier"},
	} {
		r := cfturn(t, srv, tc.env, tc.args...)
		r.check(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
	}
	r = cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": strings.Repeat("0", 64)}, "ice-servers", "--key-id", key.ID)
	r.check(t, 1)
	if strings.Contains(r.stderr, strings.Repeat("0", 64)) {
		t.Error("the wrong secret was echoed")
	}
}

func TestUsageErrors(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"nope"}, "unknown command"},
		{nil, []string{"keys", "--frobnicate"}, "unknown flag"},
		{nil, []string{"keys", "get"}, "accepts 1 arg"},
		{nil, []string{"keys", "rename", "only-one"}, "accepts 2 arg"},
		{nil, []string{"keys", "get", "not-an-id"}, "key ID is 9 characters long"},
		{nil, []string{"keys", "rename", strings.Repeat("a", 32), ""}, "name is empty"},
		{map[string]string{"CLOUDFLARE_API_TOKEN": ""}, []string{"keys", "list"}, "CLOUDFLARE_API_TOKEN"},
		{map[string]string{"CLOUDFLARE_ACCOUNT_ID": ""}, []string{"keys", "list"}, "CLOUDFLARE_ACCOUNT_ID"},
		{nil, []string{"--account-id", "a/b", "keys", "list"}, "account ID \"a/b\""},
		{nil, []string{"--base-url", "http://example.com/client/v4", "keys", "list"}, "use https"},
	} {
		r := cfturn(t, srv, tc.env, tc.args...)
		r.check(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
	}
}

func TestWrongTokenIsAPIError(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	r := cfturn(t, srv, map[string]string{"CLOUDFLARE_API_TOKEN": "wrong-token-value"}, "keys", "list")
	r.check(t, 1)
	if !strings.Contains(r.stderr, "403 Forbidden") || strings.Contains(r.stderr, "wrong-token-value") ||
		!strings.Contains(r.stderr, `hint: the API token is wrong, expired or revoked, or lacks permission: listing and getting TURN keys need "Calls Read" or "Calls Write"`) {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestHelpVersionCompletion(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	r := cfturn(t, srv, nil, "--version")
	r.check(t, 0)
	if !strings.Contains(r.stdout, "cfturn version 0.1.0") {
		t.Errorf("--version: %q", r.stdout)
	}
	for _, args := range [][]string{{"--help"}, {"keys", "--help"}, {"keys", "create", "--help"}, {"ice-servers", "--help"},
		{"ice-servers", "revoke", "--help"}, {"serve-ice", "--help"}, {"serve-fake", "--help"}, {"demo", "--help"}} {
		r := cfturn(t, srv, nil, args...)
		r.check(t, 0)
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: no usage:\n%s", args, r.stdout)
		}
	}
	r = cfturn(t, srv, nil, "completion", "bash")
	r.check(t, 0)
	if !strings.Contains(r.stdout, "__start_cfturn") {
		t.Error("no bash completion script")
	}
}

func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"1. Create", "2. List", "3. Rename", "4. Mint ICE", "5. Revoke", "revoked: true", "6. See what the relay carried", "7. Delete", "keys left: 0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`credential [0-9a-f]+: egress [1-9][0-9]* B \(billed\), ingress [1-9]`).MatchString(stdout.String()) {
		t.Errorf("demo does not show the relayed bytes' usage:\n%s", stdout.String())
	}
	if regexp.MustCompile(`[0-9a-f]{64}`).MatchString(stdout.String()) {
		t.Errorf("demo printed a secret:\n%s", stdout.String())
	}
}

func TestServeFake(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve-fake", "--json", "--addr", "127.0.0.1:0", "--token", "fake-token"}, strings.NewReader(""), out, io.Discard, func(string) string { return "" })
	}()
	base := waitFor(t, out, `"apiBaseURL": "(\S+)"`)
	if base == "" {
		cancel()
		t.Fatalf("serve-fake printed no base URL:\n%s", out.String())
	}
	var started map[string]string
	if err := json.Unmarshal([]byte(out.String()), &started); err != nil || started["token"] != "fake-token" {
		t.Fatalf("serve-fake --json: %v %q", err, out.String())
	}
	account := started["accountID"]
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "fake-token", "CLOUDFLARE_ACCOUNT_ID": account}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--base-url", base, "keys", "create", "--name", "x", "--json"}, strings.NewReader(""), &stdout, &stderr,
		func(k string) string { return env[k] })
	if code != 0 || !strings.Contains(stdout.String(), `"name": "x"`) {
		t.Errorf("keys create against serve-fake: exit %d %s %s", code, stdout.String(), stderr.String())
	}
	stop(t, "serve-fake", cancel, done)

	// Without --json it tells a person what to export and run.
	ctx, cancel = context.WithCancel(context.Background())
	text := &syncbuf.Buffer{}
	go func() {
		done <- run(ctx, []string{"serve-fake", "--addr", "127.0.0.1:0", "--token", "t0ken"}, strings.NewReader(""), text, io.Discard, func(string) string { return "" })
	}()
	if waitFor(t, text, `(export CLOUDFLARE_API_TOKEN=t0ken CLOUDFLARE_ACCOUNT_ID=[0-9a-f]{32})`) == "" {
		t.Errorf("serve-fake text output:\n%s", text.String())
	}
	stop(t, "serve-fake", cancel, done)

}

// waitFor waits up to 30s (a loaded CI machine under -race) for pattern to appear in out and returns its first group.
func waitFor(t *testing.T, out *syncbuf.Buffer, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
	}
	return ""
}

func TestServeICE(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncbuf.Buffer{}
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret, "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID,
			"--identity-header", "X-User", "--allow-origin", "https://app.example"},
			strings.NewReader(""), out, io.Discard, func(k string) string { return env[k] })
	}()
	url := waitFor(t, out, `on (http://\S+) `)
	if url == "" {
		t.Fatalf("serve-ice printed no URL:\n%s", out.String())
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-User", "alice")
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		ICEServers []map[string]any `json:"iceServers"`
		ExpiresAt  int64            `json:"expiresAt"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body.ICEServers) != 2 || body.ExpiresAt < time.Now().Unix() ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("serve-ice answer: %d %+v %v", resp.StatusCode, body, resp.Header)
	}
	stop(t, "serve-ice", cancel, done)
}

// stop plays Ctrl-C on a server command started with run and checks that it exits cleanly.
func stop(t *testing.T, name string, cancel context.CancelFunc, done <-chan int) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("%s exit %d after Ctrl-C", name, code)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop", name)
	}
}

func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "whatever\n": false} {
		got, err := confirm(strings.NewReader(in), io.Discard, "? ")
		if err != nil || got != want {
			t.Errorf("confirm(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := confirm(strings.NewReader(""), io.Discard, "? "); err == nil {
		t.Error("no answer at all is not an error")
	}
}
