package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// keys delete cannot ask on /dev/null or a closed stdin: a usage error that says --yes, and nothing
// is deleted.
func TestDeleteWithoutTerminal(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	closed, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	for name, stdin := range map[string]*os.File{"/dev/null": devNull, "closed": closed} {
		var stdout, stderr strings.Builder
		code := run(context.Background(), []string{"--base-url", srv.APIBaseURL, "keys", "delete", key.ID}, stdin, &stdout, &stderr,
			func(k string) string { return env[k] })
		r := result{code, stdout.String(), stderr.String()}
		r.check(t, 2)
		if !strings.Contains(r.stderr, "not a terminal") || !strings.Contains(r.stderr, "pass --yes") || strings.Contains(r.stderr, "[y/N]") {
			t.Errorf("%s: %q", name, r.stderr)
		}
	}
	if len(srv.Keys(srv.AccountID())) != 1 {
		t.Error("the key was deleted without confirmation")
	}
	// On a terminal, an answer that never comes is the same usage error.
	_, err = confirm(strings.NewReader(""), io.Discard, "? ")
	if err == nil {
		t.Fatal("no answer is not an error")
	}
}

// --key-secret-file reads a few KB at most, and warns when others than the owner can read it.
func TestKeySecretFile(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	dir := t.TempDir()

	r := cfturn(t, srv, nil, "ice-servers", "--key-id", key.ID, "--key-secret-file", "/dev/zero")
	r.check(t, 2)
	if !strings.Contains(r.stderr, "holds more than 4096 bytes") {
		t.Errorf("/dev/zero: %q", r.stderr)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("a", maxSecretFileBytes+1)), 0o600)
	cfturn(t, srv, nil, "ice-servers", "--key-id", key.ID, "--key-secret-file", big).check(t, 2)

	for mode, warn := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o640: true, 0o644: true, 0o604: true} {
		path := filepath.Join(dir, "secret-"+mode.String())
		if err := os.WriteFile(path, []byte(key.Secret+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode) // past the umask
		r := cfturn(t, srv, nil, "ice-servers", "--key-id", key.ID, "--key-secret-file", path)
		r.check(t, 0)
		if got := strings.Contains(r.stderr, "can be read by group or others"); got != warn {
			t.Errorf("mode %v: warned %v, want %v: %q", mode, got, warn, r.stderr)
		}
		if strings.Contains(r.stderr, key.Secret) {
			t.Error("the secret reached stderr")
		}
	}
}

// serve-fake takes its token from CFTURN_FAKE_TOKEN and its account from CLOUDFLARE_ACCOUNT_ID;
// flags win; values the client would refuse are refused before listening.
func TestServeFakeEnvironment(t *testing.T) {
	const account = "023e105f4ecef8ad9ca31a8372d0c353"
	for _, tc := range []struct {
		env            map[string]string
		args           []string
		token, account string
	}{
		{map[string]string{"CFTURN_FAKE_TOKEN": "env-token", "CLOUDFLARE_ACCOUNT_ID": account}, nil, "env-token", account},
		{map[string]string{"CFTURN_FAKE_TOKEN": "env-token", "CLOUDFLARE_ACCOUNT_ID": account},
			[]string{"--token", "flag-token", "--account-id", strings.Repeat("b", 32)}, "flag-token", strings.Repeat("b", 32)},
		// A real token in the environment is not the fake's, and never printed.
		{map[string]string{"CLOUDFLARE_API_TOKEN": "real-cloudflare-token"}, nil, "", ""},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncbuf.Buffer{}
		done := make(chan int)
		go func() {
			done <- run(ctx, append([]string{"serve-fake", "--json", "--addr", "127.0.0.1:0"}, tc.args...), strings.NewReader(""), out, io.Discard,
				func(k string) string { return tc.env[k] })
		}()
		if waitFor(t, out, `"(url)"`) == "" {
			cancel()
			t.Fatalf("serve-fake %v printed nothing: %s", tc.args, out)
		}
		var started map[string]string
		if err := json.Unmarshal([]byte(out.String()), &started); err != nil {
			t.Fatal(err)
		}
		if tc.token != "" && started["token"] != tc.token || tc.account != "" && started["accountID"] != tc.account {
			t.Errorf("env %v, args %v: token %q account %q", tc.env, tc.args, started["token"], started["accountID"])
		}
		if strings.Contains(out.String(), "real-cloudflare-token") {
			t.Error("serve-fake printed CLOUDFLARE_API_TOKEN")
		}
		// The fake accepts what it printed.
		req, _ := http.NewRequest("GET", started["apiBaseURL"]+"/accounts/"+started["accountID"]+"/calls/turn_keys", nil)
		req.Header.Set("Authorization", "Bearer "+started["token"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("list against serve-fake: %v %v", err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
		stop(t, "serve-fake", cancel, done)
	}
}

// Key IDs complete from ListKeys when a token is set, and silently not at all otherwise: without a
// token, on an API error, or when the API does not answer in time.
func TestCompleteKeyIDs(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	k1, k2 := createKey(t, srv), createKey(t, srv)
	cfturn(t, srv, nil, "keys", "rename", k1.ID, "first").check(t, 0)

	for _, args := range [][]string{
		{"__complete", "keys", "get", ""},
		{"__complete", "keys", "delete", ""},
		{"__complete", "keys", "rename", ""},
		{"__complete", "ice-servers", "--key-id", ""},
		{"__complete", "ice-servers", "revoke", "--key-id", ""},
		{"__complete", "serve-ice", "--key-id", ""},
	} {
		r := cfturn(t, srv, nil, args...)
		r.check(t, 0)
		if !strings.Contains(r.stdout, k1.ID+"\tfirst\n") || !strings.Contains(r.stdout, k2.ID+"\n") || !strings.HasSuffix(r.stdout, ":4\n") {
			t.Errorf("%v:\n%s", args, r.stdout)
		}
	}
	r := cfturn(t, srv, nil, "__complete", "keys", "get", k1.ID[:20])
	if !strings.Contains(r.stdout, k1.ID) || (k1.ID[:20] != k2.ID[:20] && strings.Contains(r.stdout, k2.ID)) {
		t.Errorf("prefix %s:\n%s", k1.ID[:20], r.stdout)
	}
	// The second argument of rename is a name, not an ID.
	if r := cfturn(t, srv, nil, "__complete", "keys", "rename", k1.ID, ""); strings.Contains(r.stdout, k2.ID) {
		t.Errorf("rename NAME completes IDs:\n%s", r.stdout)
	}

	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	for name, env := range map[string]map[string]string{
		"no token":   {"CLOUDFLARE_ACCOUNT_ID": srv.AccountID()},
		"wrong one":  {"CLOUDFLARE_API_TOKEN": "wrong-token", "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()},
		"no account": {"CLOUDFLARE_API_TOKEN": srv.Token()},
	} {
		r := runEnv(t, env, "--base-url", srv.APIBaseURL, "__complete", "keys", "get", "")
		r.check(t, 0)
		if r.stdout != ":4\n" || strings.Contains(r.stderr, "cfturn:") {
			t.Errorf("%s: stdout %q stderr %q", name, r.stdout, r.stderr)
		}
	}

	// A server that never answers: the completion gives up after completionTimeout.
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	a := &app{stdin: strings.NewReader(""), stdout: &strings.Builder{}, stderr: io.Discard, getenv: func(k string) string { return env[k] },
		completionTimeout: 100 * time.Millisecond}
	done := make(chan int, 1)
	go func() {
		done <- a.run(context.Background(), []string{"--base-url", slow.URL + "/client/v4", "__complete", "keys", "get", ""})
	}()
	select {
	case code := <-done:
		if out := a.stdout.(*strings.Builder).String(); code != 0 || out != ":4\n" {
			t.Errorf("slow server: exit %d, %q", code, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("completion against a server that never answers did not give up")
	}
}
