package iceserve_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/coturnserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
)

const (
	newSecret = "new-shared-secret-4f1c9a"
	oldSecret = "old-shared-secret-77b2e0"
)

func coturnProvider(t *testing.T, urls []string, secrets ...string) *iceserve.Coturn {
	t.Helper()
	var ss []turn.Secret
	for _, s := range secrets {
		ss = append(ss, turn.NewSecret(s))
	}
	c, err := iceserve.NewCoturn(iceserve.CoturnConfig{Secrets: ss, URLs: urls, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check runs turncheck on one ICE server entry and returns the results' statuses.
func check(t *testing.T, s turn.ICEServer) []turncheck.Result {
	t.Helper()
	report, err := turncheck.Check(context.Background(), []turn.ICEServer{s}, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return report.Results
}

func wantStatus(t *testing.T, what string, results []turncheck.Result, want turncheck.Status) {
	t.Helper()
	for _, r := range results {
		if r.Status != want {
			t.Errorf("%s: %s: %s (%s), want %s", what, r.URL, r.Status, r.Detail, want)
		}
	}
}

// Credentials minted locally allocate on a real coturn, over UDP and TCP, with either of the
// secrets it accepts; once a secret is removed from coturn, what it minted is refused.
func TestCoturnCredentialsOnRealCoturn(t *testing.T) {
	srv := coturnserver.Start(t, coturnserver.Options{Secrets: []string{newSecret, oldSecret}})
	rotated := coturnProvider(t, srv.URLs(), newSecret, oldSecret)
	before := coturnProvider(t, srv.URLs(), oldSecret)
	now := time.Now()

	fresh, expires := rotated.Mint("@alice:example.org", now)
	if got := expires.Sub(now); got < time.Hour-time.Second || got > time.Hour {
		t.Errorf("expires in %v, want about 1h", got)
	}
	wantStatus(t, "minted with the first secret", check(t, fresh), turncheck.StatusOK)
	oldCred, _ := before.Mint("@alice:example.org", now)
	wantStatus(t, "minted with the second secret", check(t, oldCred), turncheck.StatusOK)

	expired, _ := rotated.Mint("@alice:example.org", now.Add(-2*time.Hour))
	wantStatus(t, "expired", check(t, expired), turncheck.StatusAuthFailed)

	// Rotation done: coturn keeps only the new secret.
	srv.Stop()
	srv = coturnserver.Start(t, coturnserver.Options{Secrets: []string{newSecret}})
	oldCred.URLs = srv.URLs()
	wantStatus(t, "minted with a removed secret", check(t, oldCred), turncheck.StatusAuthFailed)
	fresh.URLs = srv.URLs()
	wantStatus(t, "minted with the kept secret", check(t, fresh), turncheck.StatusOK)
}

// cfturn check works on an IPv6 coturn: [::1] URLs, dialled and relayed over IPv6.
func TestCoturnIPv6Check(t *testing.T) {
	srv := coturnserver.Start(t, coturnserver.Options{Secrets: []string{newSecret}, IPv6: true})
	cred, _ := coturnProvider(t, srv.URLs(), newSecret).Mint("bob", time.Now())
	for _, u := range cred.URLs {
		if !strings.Contains(u, "[::1]:") {
			t.Fatalf("URL %q is not on [::1]", u)
		}
	}
	results := check(t, cred)
	wantStatus(t, "IPv6", results, turncheck.StatusOK)
	for _, r := range results {
		if !strings.HasPrefix(r.RelayedAddress, "[::1]:") {
			t.Errorf("%s: relayed address %q, want one on [::1]", r.URL, r.RelayedAddress)
		}
	}
}

func TestCoturnUsernameIsAPseudonym(t *testing.T) {
	c := coturnProvider(t, []string{"turn:127.0.0.1:3478"}, newSecret)
	now := time.Unix(1_900_000_000, 0)
	a, _ := c.Mint("@alice:example.org", now)
	a2, _ := c.Mint("@alice:example.org", now)
	b, _ := c.Mint("@bob:example.org", now)
	expiry, pseudonym, ok := strings.Cut(a.Username, ":")
	if !ok || expiry != strconv.FormatInt(now.Add(time.Hour).Unix(), 10) {
		t.Errorf("username %q, want <expiry>:<pseudonym> with expiry %d", a.Username, now.Add(time.Hour).Unix())
	}
	switch {
	case strings.Contains(a.Username, "alice"), strings.Contains(a.Username, "example"):
		t.Errorf("username %q holds the identity", a.Username)
	case len(pseudonym) != 16:
		t.Errorf("pseudonym %q, want 16 characters", pseudonym)
	case a.Username != a2.Username || a.Credential.Reveal() != a2.Credential.Reveal():
		t.Error("the same identity at the same time got two credentials")
	case b.Username == a.Username:
		t.Error("two identities got one pseudonym")
	}
	// Another key, another pseudonym: the pseudonym cannot be matched across deployments.
	other, err := iceserve.NewCoturn(iceserve.CoturnConfig{Secrets: []turn.Secret{turn.NewSecret(newSecret)}, URLs: []string{"turn:127.0.0.1:3478"}, TTL: time.Hour, PseudonymKey: []byte("another key")})
	if err != nil {
		t.Fatal(err)
	}
	if other.Pseudonym("@alice:example.org") == pseudonym {
		t.Error("PseudonymKey did not change the pseudonym")
	}
}

func TestReadCoturnSecrets(t *testing.T) {
	got, err := iceserve.ReadCoturnSecrets(strings.NewReader("# rotated 2026-11\n\nstatic-auth-secret=" + newSecret + "\n  " + oldSecret + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Reveal() != newSecret || got[1].Reveal() != oldSecret {
		t.Errorf("read %d secrets, want the new then the old", len(got))
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no secret in the file"},
		{"# only a comment\n\n", "no secret in the file"},
		{"static-auth-secret " + newSecret, "line 1: want static-auth-secret=SECRET"},
		{newSecret + "\nsecret with space-" + oldSecret, "line 2: the secret holds a control character or a space"},
		{strings.Repeat("s", iceserve.MaxCoturnSecretBytes+1), "over 1024 bytes"},
		{strings.Repeat("x\n", iceserve.MaxCoturnSecrets+1), "more than 16"},
	} {
		_, err := iceserve.ReadCoturnSecrets(strings.NewReader(tc.in))
		if !errors.Is(err, iceserve.ErrCoturnConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: %v, want ErrCoturnConfig with %q", tc.in, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), newSecret) || strings.Contains(err.Error(), oldSecret)) {
			t.Errorf("the secret is in the error: %v", err)
		}
	}
	dir := t.TempDir()
	if _, err := iceserve.ReadCoturnSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, iceserve.ErrCoturnConfig) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := iceserve.ReadCoturnSecretFile(empty); !errors.Is(err, iceserve.ErrCoturnConfig) || !strings.Contains(err.Error(), "empty: ") {
		t.Errorf("empty file: %v", err)
	}
}

func TestNewCoturnRefusesBadConfig(t *testing.T) {
	s := []turn.Secret{turn.NewSecret(newSecret)}
	urls := []string{"turn:127.0.0.1:3478"}
	for _, tc := range []struct {
		cfg  iceserve.CoturnConfig
		want string
	}{
		{iceserve.CoturnConfig{URLs: urls, TTL: time.Hour}, "no shared secret"},
		{iceserve.CoturnConfig{Secrets: []turn.Secret{turn.NewSecret("")}, URLs: urls, TTL: time.Hour}, "secret 1 is empty"},
		{iceserve.CoturnConfig{Secrets: s, TTL: time.Hour}, "no URLs"},
		{iceserve.CoturnConfig{Secrets: s, URLs: []string{"stun:127.0.0.1"}, TTL: time.Hour}, "not a turn: or turns: URL"},
		{iceserve.CoturnConfig{Secrets: s, URLs: []string{"turn:u:p@127.0.0.1"}, TTL: time.Hour}, "want turn:host"},
		{iceserve.CoturnConfig{Secrets: s, URLs: []string{"turn:127.0.0.1?transport=sctp"}, TTL: time.Hour}, "?transport=udp"},
		{iceserve.CoturnConfig{Secrets: s, URLs: urls}, "TTL 0s"},
		{iceserve.CoturnConfig{Secrets: s, URLs: urls, TTL: 49 * time.Hour}, "TTL 49h"},
	} {
		_, err := iceserve.NewCoturn(tc.cfg)
		if !errors.Is(err, iceserve.ErrCoturnConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want ErrCoturnConfig with %q", err, tc.want)
		}
	}
}

func TestOverlappingURLs(t *testing.T) {
	cloudflare := []string{"turn:turn.cloudflare.com:3478?transport=udp", "turn:turn.cloudflare.com:3478?transport=tcp", "turns:turn.cloudflare.com:443?transport=tcp"}
	got := iceserve.OverlappingURLs(cloudflare, []string{
		"turn:TURN.cloudflare.com.", // the default port and transport: udp 3478
		"turn:turn.cloudflare.com:3478?transport=tcp",
		"turns:turn.cloudflare.com:5349?transport=tcp", // another port
		"turn:coturn.example.org:3478?transport=udp",
	})
	want := []string{"turn:TURN.cloudflare.com.", "turn:turn.cloudflare.com:3478?transport=tcp"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("overlap %q, want %q", got, want)
	}
	if got := iceserve.OverlappingURLs([]string{"turn:[::1]:3478"}, []string{"turn:[::1]?transport=udp", "turn:[::1]:3479"}); len(got) != 1 {
		t.Errorf("IPv6 overlap %q, want the first only", got)
	}
	s := []turn.Secret{turn.NewSecret(newSecret)}
	for _, tc := range []struct {
		urls []string
		want string
	}{
		{[]string{"turn:coturn.example.org", "turn:coturn.example.org:3478?transport=udp"}, "reach the same server"},
		{[]string{"turn:turn.cloudflare.com:3478"}, "is Cloudflare's"},
	} {
		_, err := iceserve.NewCoturn(iceserve.CoturnConfig{Secrets: s, URLs: tc.urls, TTL: time.Hour})
		if !errors.Is(err, iceserve.ErrCoturnConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.urls, err, tc.want)
		}
	}
}
