package turn_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Malformed arguments are refused before any I/O, with an error naming the value and the fix.
func TestValidationSendsNothing(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	secret := turn.NewSecret(strings.Repeat("s", 64))
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"long account", func() error {
			_, err := e.client.ListKeys(ctx, turn.ListKeysParams{AccountID: strings.Repeat("a", 33)})
			return err
		}, "account ID is 33 characters long"},
		{"account with slash", func() error {
			_, err := e.client.CreateKey(ctx, turn.CreateKeyParams{AccountID: "abc/../x"})
			return err
		}, `account ID "abc/../x" has '/' at character 4`},
		{"short account", func() error {
			_, err := e.client.ListKeys(ctx, turn.ListKeysParams{AccountID: strings.Repeat("a", 31)})
			return err
		}, `is 31 characters long; Cloudflare account IDs are 32 hex characters`},
		{"account not hex", func() error {
			_, err := e.client.ListKeys(ctx, turn.ListKeysParams{AccountID: "nope"})
			return err
		}, `account ID "nope" has 'n' at character 1; Cloudflare account IDs are 32 hex characters, 0-9 and a-f`},
		{"empty key id", func() error { _, err := e.client.GetKey(ctx, turn.KeyParams{}); return err }, "key ID is empty"},
		{"short key id", func() error { _, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: "abc"}); return err }, "key ID is 3 characters long; TURN key IDs have exactly 32"},
		{"key id with space", func() error {
			_, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: "2a95132c15732412d22c1476fa83f27 "})
			return err
		}, "has a space at character 32"},
		{"zero ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret})
			return err
		}, "TTL 0s must be positive"},
		{"negative ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret, TTL: -time.Hour})
			return err
		}, "TTL -1h0m0s must be positive"},
		{"fractional ttl", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: secret, TTL: 1500 * time.Millisecond})
			return err
		}, "TTL 1.5s is not a whole number of seconds"},
		{"no secret", func() error {
			_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, TTL: time.Hour})
			return err
		}, "key secret is empty"},
		{"no username", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret})
		}, "username is empty"},
		{"username as a path step", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret, Username: ".."})
		}, `username ".." is a path step`},
		{"username with a newline", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret, Username: "a\nb"})
		}, "username has a newline at character 2"},
		{"username with slash", func() error {
			return e.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: testKeyID, KeySecret: secret, Username: "a/b"})
		}, "username contains '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, turn.ErrInvalidArgument) {
				t.Fatalf("%v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q does not say %q", err, tc.want)
			}
		})
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("invalid calls reached the server: %v", e.fake.Requests())
	}
}

// A credential passed where an ID belongs is not echoed back.
func TestValidationDoesNotEchoLongValues(t *testing.T) {
	e := setup(t)
	leaked := strings.Repeat("k", 64)
	_, err := e.client.GetKey(context.Background(), turn.KeyParams{KeyID: leaked})
	if err == nil || strings.Contains(err.Error(), leaked) {
		t.Fatalf("error %v echoes the value", err)
	}
	_, err = e.client.ListKeys(context.Background(), turn.ListKeysParams{AccountID: leaked})
	if err == nil || strings.Contains(err.Error(), leaked) {
		t.Fatalf("error %v echoes the value", err)
	}
}

func TestNoAPIToken(t *testing.T) {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAccountID(testAccount))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListKeys(context.Background(), turn.ListKeysParams{})
	if !errors.Is(err, turn.ErrNoAPIToken) || !strings.Contains(err.Error(), "CLOUDFLARE_API_TOKEN") {
		t.Fatalf("%v, want ErrNoAPIToken naming CLOUDFLARE_API_TOKEN", err)
	}
}

func TestNoAccount(t *testing.T) {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListKeys(context.Background(), turn.ListKeysParams{})
	if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), "CLOUDFLARE_ACCOUNT_ID") {
		t.Fatalf("%v, want ErrInvalidArgument naming CLOUDFLARE_ACCOUNT_ID", err)
	}
}

// Credentials with white space, control characters or other characters no credential has are
// refused before any I/O, with ErrInvalidArgument, a message that names the character and never
// the value, and a hint for the common case: a newline left by reading a file.
func TestCredentialsChecked(t *testing.T) {
	const newlineHint = "ends with a newline, so it was probably read from a file or with $(cat ...): trim it"
	for _, tc := range []struct {
		token string
		want  string
	}{
		{"dev token", "API token has a space at character 4"},
		{testToken + "\n", "API token " + newlineHint},
		{testToken + "\r\n", "API token " + newlineHint},
		{"   ", "API token is empty or only white space"},
		{"\n", "API token is empty or only white space"},
		{"tok\x00en", `API token has '\x00' at character 4`},
		{"tok\x7fen", `API token has '\x7f' at character 4`},
		{"tok\ren", "API token has a carriage return at character 4"},
		{"a\nb", "API token has a newline at character 2"},
		{"tok\u200ben", `API token has '\u200b' at character 4`},
		{"“token”", "API token has '“' at character 1"},
		{"tok en\n", "API token has a space at character 4"},
	} {
		// From the option and from the environment alike.
		for _, opt := range []turn.Option{
			turn.WithAPIToken(tc.token),
			turn.WithGetenv(func(k string) string { return map[string]string{"CLOUDFLARE_API_TOKEN": tc.token}[k] }),
		} {
			_, err := turn.NewClient(turn.WithGetenv(nil), opt)
			if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("token %q: %v, want ErrInvalidArgument saying %q", tc.token, err, tc.want)
				continue
			}
			if strings.Contains(err.Error(), "%!") || (len(tc.token) > 4 && strings.Contains(err.Error(), strings.TrimSpace(tc.token))) {
				t.Errorf("token %q: malformed or echoing error %q", tc.token, err)
			}
		}
	}
	_, err := turn.NewClient(turn.WithGetenv(func(string) string { return testToken + "\n" }))
	if err == nil || !strings.HasPrefix(err.Error(), "turn: CLOUDFLARE_API_TOKEN: invalid argument: ") {
		t.Errorf("environment token: %v, want an error naming CLOUDFLARE_API_TOKEN", err)
	}
}

// The key secret is checked the same way and must be 64 characters; nothing reaches the server,
// whose answers would otherwise come only after the retries.
func TestKeySecretChecked(t *testing.T) {
	e := setup(t)
	key, err := e.client.CreateKey(context.Background(), turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	before := e.fake.Requests()["generateIceServers"]
	good := key.Secret.Reveal()
	for _, tc := range []struct {
		secret string
		want   string
	}{
		{good + "\n", "key secret ends with a newline"},
		{good[:10] + "\x00" + good[11:], `key secret has '\x00' at character 11`},
		{good[:63] + "ю", "key secret has 'ю' at character 64"},
		{good[:63], "key secret is 63 characters long; a TURN key's secret has exactly 64"},
		{good + "0", "key secret is 65 characters long"},
		{e.fake.Token(), "key secret is 40 characters long"},
	} {
		_, err := e.client.GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: turn.NewSecret(tc.secret), TTL: time.Hour})
		if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("secret %q: %v, want ErrInvalidArgument saying %q", tc.secret, err, tc.want)
		}
		if strings.Contains(err.Error(), good[:20]) {
			t.Errorf("error %q shows the secret", err)
		}
		err = e.client.RevokeICECredential(context.Background(), turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: turn.NewSecret(tc.secret), Username: "u"})
		if !errors.Is(err, turn.ErrInvalidArgument) {
			t.Errorf("revoke with secret %q: %v, want ErrInvalidArgument", tc.secret, err)
		}
	}
	if got := e.fake.Requests()["generateIceServers"] + e.fake.Requests()["revokeIceCredential"]; got != before {
		t.Errorf("%d requests with bad secrets reached the server", got-before)
	}
}

// Positions and lengths count characters, and a character is shown as itself.
func TestValidationCountsCharacters(t *testing.T) {
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		account, key string
		want         string
	}{
		{account: "аккаунт", want: "account ID \"аккаунт\" has 'а' at character 1"},
		{account: "ab\ncd", want: "has a newline at character 3"},
		{account: "abc\xffd", want: "has a byte that is not UTF-8 at character 4"},
		{account: strings.Repeat("ю", 33), want: "account ID is 33 characters long"},
		{key: strings.Repeat("a", 31) + "ю", want: "key ID \"" + strings.Repeat("a", 31) + "ю\" has 'ю' at character 32"},
		{key: strings.Repeat("ю", 16), want: "key ID is 16 characters long"},
		{key: "../../etc/passwd", want: "key ID is 16 characters long"},
	} {
		var err error
		if tc.key == "" {
			_, err = c.ListKeys(ctx, turn.ListKeysParams{AccountID: tc.account})
		} else {
			_, err = c.GetKey(ctx, turn.KeyParams{AccountID: testAccount, KeyID: tc.key})
		}
		if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: %v, want %q", tc.account, tc.key, err, tc.want)
		}
	}
}

// Cloudflare's maximum TTL is 48 hours; more is refused before any I/O, naming the limit and
// where it comes from.
func TestTTLOverMaximum(t *testing.T) {
	e := setup(t)
	key, err := e.client.CreateKey(context.Background(), turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	p := turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: 48*time.Hour + time.Second}
	_, err = e.client.GenerateICEServers(context.Background(), p)
	if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), "TTL 48h0m1s is over Cloudflare's maximum of 48h (172800 seconds, per the Realtime TURN FAQ)") {
		t.Fatalf("%v, want ErrInvalidArgument naming the 48h limit and its source", err)
	}
	if n := e.fake.Requests()["generateIceServers"]; n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	p.TTL = turn.MaxICETTL
	if _, err := e.client.GenerateICEServers(context.Background(), p); err != nil {
		t.Errorf("TTL of exactly 48h: %v", err)
	}
}

// customIdentifier is sent when set, stored by the fake with the credential, and checked first.
func TestCustomIdentifier(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	key, err := e.client.CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"user4523958", "", "ünïcode user", strings.Repeat("ю", turn.MaxCustomIdentifierLen)} {
		ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour, CustomIdentifier: id})
		if err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		got, ok := e.fake.CustomIdentifier(ice.Servers[1].Username)
		if !ok || got != id {
			t.Errorf("fake stored customIdentifier %q (%v), want %q", got, ok, id)
		}
	}
	// Not sent at all when empty: the request body is exactly {"ttl":N}.
	var body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(201)
		io.WriteString(w, `{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]}]}`)
	}))
	defer ts.Close()
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithICEBaseURL(ts.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Minute}); err != nil || body != `{"ttl":60}` {
		t.Errorf("body %s, %v; want {\"ttl\":60}", body, err)
	}
	if _, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Minute, CustomIdentifier: "u1"}); err != nil || body != `{"customIdentifier":"u1","ttl":60}` {
		t.Errorf("body %s, %v", body, err)
	}

	before := e.fake.Requests()["generateIceServers"]
	for _, tc := range []struct{ id, want string }{
		{strings.Repeat("ю", turn.MaxCustomIdentifierLen+1), "custom identifier is 257 characters long; at most 256"},
		{"user\n42", "custom identifier has a newline at character 5"},
		{"user\x1b[31m", `custom identifier has '\x1b' at character 5`},
		{"us\u200ber", `custom identifier has '\u200b' at character 3`},
	} {
		_, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour, CustomIdentifier: tc.id})
		if !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want ErrInvalidArgument saying %q", tc.id, err, tc.want)
		}
	}
	if n := e.fake.Requests()["generateIceServers"] - before; n != 0 {
		t.Errorf("%d bad requests reached the server", n)
	}
}
