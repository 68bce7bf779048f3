package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Bad interop configuration stops serve-ice before it listens or mints, with an error naming the
// flag, and no secret in it.
func TestServeICEInteropConfigChecks(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "coturn-secret-never-printed"
	empty := write("empty", "\n# nothing\n")
	coturnSecret := write("coturn.secret", secret+"\n")
	shortKey := write("short.key", "abc\n")
	unreadable := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--turn-rest-path", "/turn-rest"}, nil, "--turn-rest-path needs the API key"},
		{[]string{"--turn-rest-path", "turn-rest", "--turn-rest-key-file", shortKey}, nil, "give a path of its own"},
		{[]string{"--turn-rest-path", "/metrics", "--turn-rest-key-file", shortKey}, nil, "taken by another endpoint"},
		{[]string{"--turn-rest-path", "/turn-rest", "--turn-rest-key-file", shortKey}, nil, "API key 1 is 3 bytes"},
		{[]string{"--turn-rest-path", "/turn-rest", "--turn-rest-key-file", unreadable}, nil, "no such file"},
		{[]string{"--turn-rest-path", "/turn-rest"}, map[string]string{turnRESTKeyEnv: "short"}, "API key 1 is 5 bytes"},
		{[]string{"--turn-rest-key-file", shortKey}, nil, "without --turn-rest-path"},
		{[]string{"--matrix-homeserver", "matrix.example.org"}, nil, "--matrix-homeserver"},
		{[]string{"--matrix-homeserver", "https://m.example.org", "--matrix-token-cache", "1h"}, nil, "CacheTTL"},
		{[]string{"--coturn-url", "turn:127.0.0.1:3478"}, nil, "needs --coturn-secret-file"},
		{[]string{"--coturn-secret-file", coturnSecret}, nil, "needs --coturn-url"},
		{[]string{"--coturn-secret-file", empty, "--coturn-url", "turn:127.0.0.1:3478"}, nil, "no secret in the file"},
		{[]string{"--coturn-secret-file", unreadable, "--coturn-url", "turn:127.0.0.1:3478"}, nil, "no such file"},
		{[]string{"--coturn-secret-file", coturnSecret, "--coturn-url", "stun:127.0.0.1:3478"}, nil, "not a turn: or turns: URL"},
		{[]string{"--coturn-secret-file", coturnSecret, "--coturn-url", "turn:127.0.0.1:3478", "--coturn-mode", "both"}, nil, "--coturn-mode"},
	} {
		env := map[string]string{"CFTURN_KEY_SECRET": key.Secret}
		for k, v := range tc.env {
			env[k] = v
		}
		r := cfturn(t, srv, env, append([]string{"serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want 2 with %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
		if strings.Contains(r.stderr, secret) {
			t.Errorf("%v: the coturn secret is in the error: %s", tc.args, r.stderr)
		}
	}
	if n := srv.Fake.Requests()["generateIceServers"]; n != 0 {
		t.Errorf("%d mints, want none: a refused configuration must not reach upstream", n)
	}
}
