package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// keyNamed returns the fake's key with that name.
func keyNamed(t *testing.T, srv *turntest.Server, name string) turn.Key {
	t.Helper()
	var names []string
	for _, k := range srv.Keys(srv.AccountID()) {
		if k.Name == name {
			return k
		}
		names = append(names, k.Name)
	}
	t.Fatalf("no key named %q; keys: %q", name, names)
	return turn.Key{}
}

// deleteAfter reads the date after which the old key may be deleted from keys rotate's text.
func deleteAfter(t *testing.T, stdout string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`After (\S+) \(now \+ `).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no deletion date in:\n%s", stdout)
	}
	at, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func TestKeysRotate(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	dir := t.TempDir()
	old := cfturn(t, srv, nil, "keys", "create", "--name", "prod", "--json")
	old.check(t, 0)
	var oldKey createdKey
	if err := json.Unmarshal([]byte(old.stdout), &oldKey); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "new.secret")
	before := time.Now().UTC()
	r := cfturn(t, srv, nil, "keys", "rotate", oldKey.ID, "--out", out)
	after := time.Now().UTC()
	r.check(t, 0)
	date := before.Format(time.DateOnly)
	if after.Format(time.DateOnly) != date && !strings.Contains(r.stdout, after.Format(time.DateOnly)) {
		date = after.Format(time.DateOnly) // the test ran across midnight
	}
	newKey := keyNamed(t, srv, "prod (rotated "+date+")")

	// The secret is in a new 0600 file, works, and is never printed.
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(out)
	secret := strings.TrimSpace(string(b))
	if len(secret) != 64 {
		t.Fatalf("secret file holds %d characters, want 64", len(secret))
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatalf("keys rotate printed the new secret:\n%s%s", r.stdout, r.stderr)
	}
	if _, err := srv.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{
		KeyID: newKey.ID, KeySecret: turn.NewSecret(secret), TTL: time.Minute}); err != nil {
		t.Fatalf("the secret in %s does not mint with the new key: %v", out, err)
	}

	// Nothing is deleted; the steps say what to do and when the old key may go.
	if len(srv.Keys(srv.AccountID())) != 2 {
		t.Fatalf("keys after rotate: %d, want the old and the new", len(srv.Keys(srv.AccountID())))
	}
	for _, want := range []string{newKey.ID, "--key-id " + newKey.ID, out, "SIGHUP", "cfturn keys delete " + oldKey.ID, "cfturn deletes nothing"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("keys rotate's output lacks %q:\n%s", want, r.stdout)
		}
	}
	if at := deleteAfter(t, r.stdout); at.Before(before.Add(48*time.Hour).Truncate(time.Second)) || at.After(after.Add(48*time.Hour)) {
		t.Errorf("delete after %v, want now + 48h (%v)", at, before.Add(48*time.Hour))
	}

	// Rotating the rotated key replaces the date rather than adding one; --max-ttl sets the date;
	// --json carries the same, without the secret.
	out2 := filepath.Join(dir, "newer.secret")
	before = time.Now().UTC()
	r = cfturn(t, srv, nil, "keys", "rotate", newKey.ID, "--out", out2, "--max-ttl", "24h", "--json")
	r.check(t, 0)
	var got rotation
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if !regexp.MustCompile(`^prod \(rotated \d{4}-\d{2}-\d{2}\)$`).MatchString(got.NewKey.Name) || got.OldKey.ID != newKey.ID ||
		got.SecretFile != out2 || len(got.Steps) != 3 {
		t.Errorf("--json: %+v", got)
	}
	if d := got.DeleteOldAfter.Sub(before); d < 24*time.Hour-time.Second || d > 24*time.Hour+time.Minute {
		t.Errorf("--max-ttl 24h: delete after %v, %v from now", got.DeleteOldAfter, d)
	}
	if b, _ := os.ReadFile(out2); strings.Contains(r.stdout, strings.TrimSpace(string(b))) || strings.Contains(r.stdout, `"key"`) {
		t.Errorf("--json shows the secret:\n%s", r.stdout)
	}
}

func TestKeysRotateRefuses(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	dir := t.TempDir()
	old := createKey(t, srv)
	existing := filepath.Join(dir, "existing")
	os.WriteFile(existing, []byte("keep me\n"), 0o600)
	unknown := strings.Repeat("0", 32)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "rotate", old.ID}, 2, "--out FILE is required"},
		{[]string{"keys", "rotate", old.ID, "--out", existing}, 2, "file exists"},
		{[]string{"keys", "rotate", old.ID, "--out", filepath.Join(dir, "a"), "--max-ttl", "49h"}, 2, "--max-ttl 49h0m0s"},
		{[]string{"keys", "rotate", old.ID, "--out", filepath.Join(dir, "b"), "--max-ttl", "0s"}, 2, "1s to 48h"},
		{[]string{"keys", "rotate", unknown, "--out", filepath.Join(dir, "c")}, 1, "404"},
		{[]string{"keys", "rotate", "--out", filepath.Join(dir, "d")}, 2, "accepts 1 arg"},
	} {
		r := cfturn(t, srv, nil, tc.args...)
		r.check(t, tc.code)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	if n := len(srv.Keys(srv.AccountID())); n != 1 {
		t.Errorf("%d keys after refused rotations, want only the old one", n)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me\n" {
		t.Error("an existing --out file was changed")
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("a refused rotation left %s behind", name)
		}
	}

	// A failed create leaves no file and no key.
	srv.InjectFault(turntest.Fault{Operation: "createTurnKey", Status: 403})
	r := cfturn(t, srv, nil, "keys", "rotate", old.ID, "--out", filepath.Join(dir, "e"))
	r.check(t, 1)
	if _, err := os.Stat(filepath.Join(dir, "e")); !os.IsNotExist(err) || len(srv.Keys(srv.AccountID())) != 1 {
		t.Errorf("a failed create left a file (%v) or a key (%d keys)", err, len(srv.Keys(srv.AccountID())))
	}
}

func TestRotatedName(t *testing.T) {
	day := time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC)
	for _, tc := range []struct{ old, want string }{
		{"prod", "prod (rotated 2026-12-01)"},
		{"prod (rotated 2026-01-31)", "prod (rotated 2026-12-01)"},
		{"prod (rotated soon)", "prod (rotated soon) (rotated 2026-12-01)"},
		{"", "0123456789abcdef0123456789abcdef (rotated 2026-12-01)"},
	} {
		if got := rotatedName(turn.Key{ID: "0123456789abcdef0123456789abcdef", Name: tc.old}, day); got != tc.want {
			t.Errorf("rotatedName(%q) = %q, want %q", tc.old, got, tc.want)
		}
	}
}
