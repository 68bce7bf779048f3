package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// runEnv runs the CLI in-process with exactly env as its environment and no --base-url added.
func runEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code, stdout.String(), stderr.String()}
}

// The exit-status rule, case by case: local problems exit 2, API failures 1.
func TestExitCodes(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"--out into a missing directory", nil, []string{"keys", "create", "--out", filepath.Join(dir, "no", "such", "dir", "k.secret")}, 2, "no such file or directory; nothing was created"},
		{"--out into a directory", nil, []string{"keys", "create", "--out", dir}, 2, "--out"},
		{"serve-fake on a port in use", nil, []string{"serve-fake", "--addr", busy.Addr().String()}, 2, "address already in use"},
		{"serve-ice on a port in use", env, []string{"serve-ice", "--key-id", key.ID, "--addr", busy.Addr().String()}, 2, "address already in use"},
		{"missing --key-secret-file", nil, []string{"ice-servers", "--key-id", key.ID, "--key-secret-file", filepath.Join(dir, "missing")}, 2, "no such file"},
		{"unreadable --key-secret-file", nil, []string{"ice-servers", "--key-id", key.ID, "--key-secret-file", dir}, 2, "is a directory"},
		{"unknown command", nil, []string{"keyz"}, 2, `unknown command "keyz"; did you mean keys?`},
		{"API error", nil, []string{"keys", "get", strings.Repeat("0", 32)}, 1, "404 Not Found"},
		{"API unreachable", map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token()}, []string{"--base-url", "http://127.0.0.1:1/client/v4", "--account-id", srv.AccountID(), "keys", "list"}, 1, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cfturn(t, srv, tc.env, tc.args...)
			r.check(t, tc.code)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q, want it to say %q", r.stderr, tc.want)
			}
		})
	}
	if n := len(srv.Keys(srv.AccountID())); n != 1 {
		t.Errorf("%d keys after failed creates, want 1: a key whose secret cannot be stored was created", n)
	}
}

// The rule is stated once, in exitStatusHelp, and shown by cfturn --help and the README.
func TestExitStatusDocumented(t *testing.T) {
	r := runEnv(t, nil, "--help")
	r.check(t, 0)
	rule := strings.Join(strings.Fields(exitStatusHelp), " ")
	if !strings.Contains(r.stdout, exitStatusHelp) {
		t.Errorf("cfturn --help does not state the exit status rule:\n%s", r.stdout)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), rule) {
		t.Errorf("README.md does not state the exit status rule word for word:\n%s", exitStatusHelp)
	}
}

// Unknown commands, at any level and in cobra's own commands, get one prefix, a suggestion and
// exit status 2.
func TestUnknownCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keyz"}, `cfturn: unknown command "keyz"; did you mean keys? (see cfturn --help)`},
		{[]string{"ice"}, `cfturn: unknown command "ice"; did you mean ice-servers? (see cfturn --help)`},
		{[]string{"keys", "lst"}, `cfturn: unknown command "lst" for "keys"; did you mean list? (see cfturn keys --help)`},
		{[]string{"ice-servers", "revok"}, `cfturn: unknown command "revok" for "ice-servers"; did you mean revoke? (see cfturn ice-servers --help)`},
		{[]string{"completion", "tcsh"}, `cfturn: unknown command "tcsh" for "completion" (see cfturn completion --help)`},
		{[]string{"completion", "bsh"}, `did you mean bash or zsh?`},
		{[]string{"completion"}, "completion needs a shell: bash, zsh, fish or powershell"},
		{[]string{"help", "keyz"}, `cfturn: unknown command "keyz"; did you mean keys?`},
		{[]string{"help", "keys", "lst"}, `unknown command "lst" for "keys"; did you mean list?`},
		{[]string{"keys"}, "keys needs a subcommand"},
		{[]string{"keys", "get"}, "cfturn: keys get: accepts 1 arg(s), received 0 (see cfturn keys get --help)"},
		{[]string{"demo", "now"}, `cfturn: demo: unknown command "now" for "cfturn demo"`},
	} {
		r := runEnv(t, nil, tc.args...)
		r.check(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
		if strings.Count(r.stderr, "cfturn:") != 1 {
			t.Errorf("%v: not one prefix: %q", tc.args, r.stderr)
		}
	}
	r := runEnv(t, nil, "help", "keys")
	r.check(t, 0)
	if !strings.Contains(r.stdout, "cfturn keys [command]") {
		t.Errorf("help keys:\n%s", r.stdout)
	}
}

// libraryNames matches what pkg/turn's messages name for Go callers and a CLI user cannot type.
var libraryNames = regexp.MustCompile(`\bWith[A-Z]\w*|\bturn\.[A-Z]\w*|time\.(Hour|Minute|Second)|\b(ListKeys|CreateKey|GetKey|UpdateKey|DeleteKey|AccountID)\b|^cfturn: (turn|turntest|cfturn):`)

// Every message names the flag or the environment variable to change, never a library option.
func TestMessagesNameFlags(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	secret := map[string]string{"CFTURN_KEY_SECRET": key.Secret}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"CLOUDFLARE_API_TOKEN": ""}, []string{"keys", "list"}, "set CLOUDFLARE_API_TOKEN"},
		{map[string]string{"CLOUDFLARE_API_TOKEN": "a b"}, []string{"keys", "list"}, "CLOUDFLARE_API_TOKEN"},
		{map[string]string{"CLOUDFLARE_ACCOUNT_ID": ""}, []string{"keys", "list"}, "pass --account-id or set CLOUDFLARE_ACCOUNT_ID"},
		{map[string]string{"CLOUDFLARE_ACCOUNT_ID": "a/b"}, []string{"keys", "list"}, "CLOUDFLARE_ACCOUNT_ID"},
		{nil, []string{"--account-id", strings.Repeat("a", 33), "keys", "list"}, "--account-id"},
		{nil, []string{"--base-url", "https://user:pw@example.com/client/v4", "keys", "list"}, "--base-url"},
		{nil, []string{"--base-url", "http://example.com/client/v4", "keys", "list"}, "--base-url"},
		{nil, []string{"--ice-base-url", "https://example.com/v1?x=1", "keys", "list"}, "--ice-base-url"},
		{secret, []string{"ice-servers", "--key-id", key.ID, "--ttl", "-1h"}, "e.g. --ttl 24h"},
		{secret, []string{"ice-servers", "--key-id", key.ID, "--ttl", "1500ms"}, "not a whole number of seconds"},
		{map[string]string{"CFTURN_KEY_SECRET": "x y"}, []string{"ice-servers", "--key-id", key.ID}, "key secret"},
		{secret, []string{"ice-servers", "revoke", "a/b", "--key-id", key.ID}, "username"},
		{nil, []string{"keys", "get", "not-an-id"}, "key ID"},
		{nil, []string{"keys", "rename", key.ID, ""}, "name"},
		{nil, []string{"serve-fake", "--token", "a b"}, "--token"},
		{map[string]string{"CFTURN_FAKE_TOKEN": "a\tb"}, []string{"serve-fake"}, "CFTURN_FAKE_TOKEN"},
		{map[string]string{"CLOUDFLARE_ACCOUNT_ID": "xyz/1"}, []string{"serve-fake"}, "CLOUDFLARE_ACCOUNT_ID"},
		{nil, []string{"serve-fake", "--account-id", "xyz/1"}, "--account-id"},
	} {
		r := cfturn(t, srv, tc.env, tc.args...)
		r.check(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
		if m := libraryNames.FindString(r.stderr); m != "" {
			t.Errorf("%v: the message names %q, which only a Go caller has: %q", tc.args, m, r.stderr)
		}
	}
}

// --base-url: an empty value is refused, a value that is no URL is shown, and a server's root
// instead of its API root gets a hint.
func TestBaseURLMessages(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--base-url", "", "keys", "list"}, 2, "--base-url is empty; give a value or leave the flag out"},
		{[]string{"--ice-base-url", " ", "keys", "list"}, 2, "--ice-base-url is empty"},
		{[]string{"--account-id", "", "keys", "list"}, 2, "--account-id is empty"},
		{[]string{"--base-url", "127.0.0.1:8787/client/v4", "keys", "list"}, 2, `--base-url "127.0.0.1:8787/client/v4" is not an absolute http(s) URL; pass the API root, e.g. https://api.cloudflare.com/client/v4`},
		{[]string{"--base-url", "ftp://x/client/v4", "keys", "list"}, 2, `--base-url "ftp://x/client/v4" is not an absolute http(s) URL`},
		{[]string{"--base-url", "ftp://me:hunter2@x/", "keys", "list"}, 2, `--base-url "ftp://me:xxxxx@x/" is not`},
		// A root the ICE root cannot be derived from is refused before any request, for every
		// command, as the library refuses it: an ICE call would otherwise go to Cloudflare.
		{[]string{"--base-url", srv.URL, "keys", "list"}, 2, `--base-url: "` + srv.URL + `" does not end in /client/v4`},
		{[]string{"--base-url", srv.URL, "ice-servers", "--key-id", strings.Repeat("a", 32)}, 2, "pass --ice-base-url too"},
		// With --ice-base-url given, a server's root still gets its hint from the 404.
		{[]string{"--base-url", srv.URL, "--ice-base-url", srv.ICEBaseURL, "keys", "list"}, 1, "(hint: --base-url " + srv.URL + " probably lacks /client/v4; the key API root is e.g. " + srv.URL + "/client/v4)"},
		{[]string{"--base-url", srv.URL + "/", "--ice-base-url", srv.ICEBaseURL, "keys", "get", strings.Repeat("a", 32)}, 1, "probably lacks /client/v4"},
		// An --ice-base-url that is not the ICE API's root.
		{[]string{"--ice-base-url", srv.URL, "ice-servers", "--key-id", strings.Repeat("a", 32)}, 1, "(hint: --ice-base-url " + srv.URL + " is probably not the ICE API's root, which ends in /v1: https://rtc.live.cloudflare.com/v1"},
	} {
		var stdout, stderr strings.Builder
		env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID(), "CFTURN_KEY_SECRET": strings.Repeat("k", 64)}
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
		r := result{code, stdout.String(), stderr.String()}
		r.check(t, tc.code)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "hunter2") {
			t.Errorf("%v: password echoed: %q", tc.args, r.stderr)
		}
	}
	// A real 404 from the key API, at the right root, gets no hint about the root.
	r := cfturn(t, srv, nil, "keys", "get", strings.Repeat("a", 32))
	r.check(t, 1)
	if strings.Contains(r.stderr, "/client/v4") || strings.Contains(r.stderr, "--ice-base-url") {
		t.Errorf("a hint about the root on a real 404: %q", r.stderr)
	}
}

// A key saved from a fake that has restarted since: its 404 says that the fake's state lives in
// memory, for key and ICE calls. Against a non-loopback server there is no such hint.
func TestRestartedFakeHint(t *testing.T) {
	old := turntest.NewServer()
	key := createKey(t, old)
	old.Close()
	srv := turntest.NewServer()
	defer srv.Close()
	const want = "(hint: if this is cfturn serve-fake, its keys live in memory and are gone once it restarts: remove the old key files and create the key again with cfturn keys create)"
	for _, args := range [][]string{
		{"keys", "get", key.ID},
		{"ice-servers", "--key-id", key.ID},
		{"--ice-base-url", srv.ICEBaseURL, "ice-servers", "--key-id", key.ID},
	} {
		r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret}, args...)
		r.check(t, 1)
		if !strings.Contains(r.stderr, "404 Not Found") || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: %q, want a 404 with %q", args, r.stderr, want)
		}
	}
}
