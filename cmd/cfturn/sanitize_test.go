package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain name, é ю 日本 🙂": "plain name, é ю 日本 🙂",
		"a\nb\rc\td":           `a\nb\rc\td`,
		"\x1b[31mred\x1b[0m":   `\x1b[31mred\x1b[0m`,
		"del\x7f c1\u009b":     `del\x7f c1\u009b`,
		"zero\u200bwidth":      `zero\u200bwidth`,
		"bidi\u202etxt.exe":    `bidi\u202etxt.exe`,
		"isolate\u2066x\u2069": `isolate\u2066x\u2069`,
		"line\u2028sep":        `line\u2028sep`,
		"bom\ufeff":            `bom\ufeff`,
		"tag\U000E0041":        `tag\U000e0041`,
		"bad\xffutf8":          `bad\xffutf8`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// terminalSafeJSON keeps the JSON's meaning: what a parser reads back is the original text.
func TestTerminalSafeJSONRoundTrip(t *testing.T) {
	for _, s := range hostileNames {
		b, err := json.MarshalIndent(map[string]string{"name": s}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		safe := terminalSafeJSON(b)
		if r := firstUnsafe(string(safe)); r >= 0 {
			t.Errorf("%q: %U left raw in %s", s, r, safe)
		}
		var back map[string]string
		if err := json.Unmarshal(safe, &back); err != nil || back["name"] != s {
			t.Errorf("%q: read back %q, %v", s, back["name"], err)
		}
	}
}

// hostileNames are key names a hostile server could send to forge table rows, move the cursor,
// clear the screen, recolour, hide or reorder text.
var hostileNames = []string{
	"evil\nffffffffffffffffffffffffffffffff  forged-row  2026-01-01T00:00:00Z  2026-01-01T00:00:00Z",
	"\x1b[2J\x1b[H\x1b[31mscreen cleared\x1b[0m",
	"cr\roverwrite",
	"tab\tshift",
	"zero\u200bwidth\u2060joiner\u200d",
	"bidi\u202egnp.exe and \u2066isolate\u2069",
	"c1 csi \u009b31m and nel \u0085",
	"del\x7f",
	"tag \U000E0041\U000E0042",
	"line\u2028sep\u2029para",
}

// firstUnsafe returns the first character a terminal would act on, other than a line break, or -1.
func firstUnsafe(s string) rune {
	for _, r := range s {
		if r != '\n' && unsafeRune(r) {
			return r
		}
	}
	return -1
}

// hostileServer answers the key API and the ICE API with the hostile names and error messages.
func hostileServer(t *testing.T) *httptest.Server {
	t.Helper()
	key := func(i int, name string) map[string]any {
		return map[string]any{"uid": fmt.Sprintf("%032x", i+1), "name": name,
			"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z"}
	}
	ok := func(w http.ResponseWriter, status int, result any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /client/v4/accounts/{account}/calls/turn_keys", func(w http.ResponseWriter, r *http.Request) {
		var keys []any
		for i, n := range hostileNames {
			keys = append(keys, key(i, n))
		}
		ok(w, 200, keys)
	})
	mux.HandleFunc("GET /client/v4/accounts/{account}/calls/turn_keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		ok(w, 200, key(0, hostileNames[0]))
	})
	mux.HandleFunc("POST /client/v4/accounts/{account}/calls/turn_keys", func(w http.ResponseWriter, r *http.Request) {
		k := key(1, hostileNames[1])
		k["key"] = strings.Repeat("ab", 32)
		ok(w, 201, k)
	})
	mux.HandleFunc("PUT /client/v4/accounts/{account}/calls/turn_keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]any{"success": false, "messages": []any{}, "result": nil, "errors": []any{
			map[string]any{"code": 1001, "message": "bad name\n\x1b[2Jcfturn: key renamed \u202eok\u009b"},
		}})
	})
	mux.HandleFunc("DELETE /client/v4/accounts/{account}/calls/turn_keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(403)
		fmt.Fprint(w, "denied\n\x1b[31mcfturn: deleted\u200b\u202e")
	})
	mux.HandleFunc("POST /v1/turn/keys/{id}/credentials/generate-ice-servers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"iceServers": []any{
			map[string]any{"urls": []string{"stun:stun.example:3478\u202e"}},
			map[string]any{"urls": []string{"turn:turn.example:3478?transport=udp\x7f"}, "username": "u\u009bser", "credential": "c\u200bred"},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// Nothing a server sends reaches the terminal raw: not in tables, not in JSON, not in errors.
func TestHostileServerOutput(t *testing.T) {
	srv := hostileServer(t)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "test-token", "CLOUDFLARE_ACCOUNT_ID": strings.Repeat("a", 32),
		"CFTURN_KEY_SECRET": strings.Repeat("cd", 32)}
	id := fmt.Sprintf("%032x", 1)
	hostile := func(args ...string) result {
		t.Helper()
		r := runEnv(t, env, append([]string{"--base-url", srv.URL + "/client/v4"}, args...)...)
		for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			if r := firstUnsafe(out); r >= 0 || !utf8.ValidString(out) {
				t.Errorf("%v: %s carries %U raw:\n%q", args, name, r, out)
			}
		}
		return r
	}

	r := hostile("keys", "list")
	r.check(t, 0)
	if lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); len(lines) != 1+len(hostileNames) {
		t.Errorf("keys list printed %d lines for %d keys:\n%s", len(lines), len(hostileNames), r.stdout)
	}
	if !strings.Contains(r.stdout, `evil\nffff`) || !strings.Contains(r.stdout, `\x1b[2J`) || !strings.Contains(r.stdout, `bidi\u202egnp`) {
		t.Errorf("escapes not visible:\n%s", r.stdout)
	}

	r = hostile("keys", "list", "--json")
	r.check(t, 0)
	var keys []struct{ Name string }
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil || len(keys) != len(hostileNames) {
		t.Fatalf("keys list --json: %v\n%s", err, r.stdout)
	}
	for i, k := range keys {
		if k.Name != hostileNames[i] {
			t.Errorf("--json changed name %q to %q", hostileNames[i], k.Name)
		}
	}

	hostile("keys", "get", id).check(t, 0)
	hostile("keys", "get", id, "--json").check(t, 0)
	hostile("keys", "create").check(t, 0)
	hostile("keys", "create", "--json").check(t, 0)
	hostile("ice-servers", "--key-id", id).check(t, 0)

	r = hostile("keys", "rename", id, "new")
	r.check(t, 1)
	// The library already folds the message's control characters; whatever is left is escaped,
	// so the forged "cfturn: key renamed" never starts a line of its own.
	if !strings.Contains(r.stderr, "bad name") || strings.ContainsAny(r.stderr[:len(r.stderr)-1], "\x1b\r\n") ||
		strings.Contains(r.stderr, "\ncfturn: key renamed") {
		t.Errorf("rename error: %q", r.stderr)
	}
	r = hostile("keys", "delete", "--yes", id)
	r.check(t, 1)
	if !strings.Contains(r.stderr, "403 Forbidden") {
		t.Errorf("delete error: %q", r.stderr)
	}

	// Completions are lines read by the shell, "ID<tab>name": a name must add no line and no tab.
	r = runEnv(t, env, "--base-url", srv.URL+"/client/v4", "__complete", "keys", "get", "")
	r.check(t, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(hostileNames)+1 {
		t.Errorf("__complete printed %d lines for %d keys:\n%s", len(lines), len(hostileNames), r.stdout)
	}
	for _, l := range lines {
		if c := firstUnsafe(strings.Replace(l, "\t", " ", 1)); c >= 0 {
			t.Errorf("__complete line carries %U raw: %q", c, l)
		}
	}
}
