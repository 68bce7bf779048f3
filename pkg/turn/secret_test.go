package turn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// renderings returns every way v can reach a log or an error message.
func renderings(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&b, verb+"\n", v)
	}
	fmt.Fprintln(&b, v)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "v", v)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "v", v)
	b.Write(logs.Bytes())
	return b.String()
}

func TestSecretRedacts(t *testing.T) {
	const value = "s3cr3t-value-that-must-not-leak"
	s := turn.NewSecret(value)
	if s.Reveal() != value {
		t.Fatal("Reveal does not return the value")
	}
	out := renderings(t, s) + renderings(t, &s) + renderings(t, struct{ S turn.Secret }{s}) + renderings(t, struct{ s turn.Secret }{s})
	if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
		t.Fatalf("secret leaked:\n%s", out)
	}
	if !strings.Contains(out, "[REDACTED]") {
		t.Error("redacted form never shown")
	}
	b, err := json.Marshal(map[string]turn.Secret{"k": s})
	if err != nil || string(b) != `{"k":"[REDACTED]"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var back turn.Secret
	if err := json.Unmarshal([]byte(`"abc"`), &back); err != nil || back.Reveal() != "abc" {
		t.Errorf("unmarshal: %q, %v", back.Reveal(), err)
	}
	if turn.NewSecret("").String() != "" || !turn.NewSecret("").IsZero() {
		t.Error("empty secret is not the zero Secret")
	}
}

// None of our types shows a credential when printed or logged, and the client shows no token.
func TestTypesRedact(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	key, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{e.fake.Token(), key.Secret.Reveal(), ice.Servers[1].Username, ice.Servers[1].Credential.Reveal()}
	out := renderings(t, key) + renderings(t, &key) + renderings(t, ice) + renderings(t, ice.Servers) + renderings(t, e.client)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("a credential leaked into:\n%s", out)
		}
	}
	if !strings.Contains(out, key.ID) || !strings.Contains(out, "turn:") {
		t.Error("redaction hid the harmless fields too")
	}
}

// ICEServers is for the browser: marshalled, it is exactly the RTCConfiguration, credentials
// included, with any field Cloudflare adds kept.
func TestICEServersJSONForBrowsers(t *testing.T) {
	in := `{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]},{"urls":["turn:turn.cloudflare.com:3478?transport=udp"],"username":"u","credential":"c","credentialType":"password"}],"note":1}`
	var s turn.ICEServers
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Servers[1].Credential.Reveal() != "c" || s.Servers[1].Username != "u" {
		t.Fatalf("decoded %v", s)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]},{"urls":["turn:turn.cloudflare.com:3478?transport=udp"],"username":"u","credential":"c","credentialType":"password"}],"note":1}`
	if string(out) != want {
		t.Errorf("marshal\n got: %s\nwant: %s", out, want)
	}
	if b, _ := json.Marshal(s.Servers); strings.Contains(string(b), `"c"`) || strings.Contains(string(b), `"u"`) {
		t.Errorf("a lone entry marshals its credentials: %s", b)
	}
	var one turn.ICEServer
	if err := json.Unmarshal([]byte(`{"urls":"stun:x"}`), &one); err != nil || len(one.URLs) != 1 {
		t.Errorf("urls as a string: %v, %v", one, err)
	}
}

// A hostile or broken server that echoes the Authorization header back, cut anywhere by the
// excerpt's limits and disguised with zero-width, control, combining or white-space characters
// between the secret's characters, never gets a piece of the secret into an error: no run of 4 of
// its characters, once everything a credential cannot hold is left out of the error text.
func TestEchoedSecretNeverLeaks(t *testing.T) {
	secret := strings.Repeat("0123456789abcdef", 4) // hex like a key secret; the padding below is not
	var pad atomic.Int64
	var disguise atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		sep := disguise.Load().(string)
		var b strings.Builder
		for _, r := range auth {
			b.WriteRune(r)
			b.WriteString(sep)
		}
		filler := "x"
		if sep != "" {
			filler = sep + "x"
		}
		prefix := strings.Repeat(filler, int(pad.Load()))
		if strings.HasPrefix(r.URL.Path, "/client/v4/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(403)
			msg, _ := json.Marshal(prefix + "echo " + b.String())
			fmt.Fprintf(w, `{"success":false,"errors":[{"code":10000,"message":%s,"documentation_url":%s}],"messages":[{"code":10001,"message":%s}]}`, msg, msg, msg)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(401)
		io.WriteString(w, prefix+"Authorization: "+b.String()+" trailing words")
	}))
	defer ts.Close()
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(secret), turn.WithAccountID(testAccount),
		turn.WithBaseURL(ts.URL+"/client/v4"), turn.WithICEBaseURL(ts.URL+"/v1"), turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	// leaks returns the first run of 4 characters of secret in s, ignoring what no credential holds.
	leaks := func(s string) string {
		var proj strings.Builder
		for _, r := range s {
			if r > ' ' && r < 0x7f {
				proj.WriteRune(r)
			}
		}
		for i := 0; i+4 <= len(secret); i++ {
			if strings.Contains(proj.String(), secret[i:i+4]) {
				return secret[i : i+4]
			}
		}
		return ""
	}
	ctx := context.Background()
	calls := 0
	for _, sep := range []string{"", "\u200b", "\u2060\ufeff", "\x00", "\x1b", "\u0301", " ", "\n", "\r\n\t"} {
		disguise.Store(sep)
		for p := 0; p <= 600; p += 1 + p/40 {
			pad.Store(int64(p))
			_, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(secret), TTL: time.Minute})
			_, err2 := c.ListKeys(ctx, turn.ListKeysParams{})
			calls++
			for _, err := range []error{err, err2} {
				var apiErr *turn.APIError
				if !errors.As(err, &apiErr) {
					t.Fatalf("%v is not an *APIError", err)
				}
				fields := fmt.Sprint(err.Error(), apiErr.Excerpt, apiErr.Errors, apiErr.Messages)
				if l := leaks(fields); l != "" {
					t.Fatalf("separator %q, padding %d: %q of the secret leaked into %q", sep, p, l, fields)
				}
				if strings.ContainsAny(err.Error(), "\x00\x1b\n\r\u200b\u2060\ufeff") {
					t.Fatalf("separator %q, padding %d: control or invisible character in %q", sep, p, err)
				}
			}
		}
	}
	if calls < 100 {
		t.Fatalf("only %d calls made", calls)
	}
}

// A 201 whose body is broken still holds the credential it minted, which may be short enough to
// pass for a word: the error shows none of that body.
func TestBrokenMintAnswerStaysOutOfErrors(t *testing.T) {
	const cred = "pw4Xy" // too short for any pattern to take for a secret
	for name, body := range map[string]string{
		"truncated": `{"iceServers":[{"urls":["turn:t.example:3478"],"username":"u1","credential":"` + cred + `"}`,
		"trailing":  `{"iceServers":[{"urls":["turn:t.example:3478"],"username":"u1","credential":"` + cred + `"}]} and more`,
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, body)
		}))
		c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithBaseURL(ts.URL+"/client/v4"), turn.WithICEBaseURL(ts.URL+"/v1"), turn.WithRetry(0))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(strings.Repeat("k", 64)), TTL: time.Minute})
		var apiErr *turn.APIError
		if !errors.As(err, &apiErr) || !errors.Is(err, turn.ErrUnexpectedResponse) {
			t.Fatalf("%s: %v, want an unexpected response", name, err)
		}
		if s := fmt.Sprintf("%v %+v %s", err, apiErr, apiErr.Excerpt); strings.Contains(s, cred) {
			t.Errorf("%s: the minted credential is in the error: %s", name, s)
		}
		ts.Close()
	}
}

// A server that echoes the request, the token in it written out, escaped or broken up: Do's check
// never sees the token, however it reads the body.
func TestDoBodyNeverHoldsTheToken(t *testing.T) {
	var body atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(400)
		io.WriteString(w, body.Load().(string))
	}))
	defer ts.Close()
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken), turn.WithBaseURL(ts.URL+"/client/v4"), turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	var escaped, spaced strings.Builder
	for i, r := range testToken {
		fmt.Fprintf(&escaped, `\u%04x`, r)
		if i > 0 {
			spaced.WriteString("\u200b")
		}
		spaced.WriteRune(r)
	}
	half := len(testToken) / 2
	for _, tc := range []struct{ name, body, want string }{
		{"written out", `{"echo":"Bearer ` + testToken + `"}`, `{"echo":"Bearer [REDACTED]"}`},
		{"JSON escapes", `{"echo":"` + escaped.String() + `"}`, `{"echo":"[REDACTED]"}`},
		{"a JSON line break inside", `{"echo":"` + testToken[:half] + `\n` + testToken[half:] + `"}`, `{"echo":"[REDACTED]"}`},
		{"zero-width spaces", `<p>` + spaced.String() + `</p>`, `<p>[REDACTED]</p>`},
		{"twice, among other text", testToken + " and " + testToken + "!", "[REDACTED] and [REDACTED]!"},
		{"only a part of it", `{"echo":"` + testToken[:half] + `"}`, `{"echo":"` + testToken[:half] + `"}`},
	} {
		body.Store(tc.body)
		var got []byte
		var header string
		err := c.Do(context.Background(), turn.DoParams{Name: "Echo", Path: "echo"}, func(r *turn.Response) error {
			got, header = r.Body, r.Header.Get("X-Echo")
			return fmt.Errorf("echo: %q", r.Body)
		})
		if header != "Bearer [REDACTED]" {
			t.Errorf("%s: a header echoing the token reached check as %q", tc.name, header)
		}
		if string(got) != tc.want {
			t.Errorf("%s: check got %s\nwant %s", tc.name, got, tc.want)
		}
		var decoded string
		if json.Unmarshal(got, &struct{ Echo *string }{&decoded}) == nil && strings.Contains(decoded, testToken) {
			t.Errorf("%s: the decoded body holds the token: %q", tc.name, decoded)
		}
		visible := strings.Map(func(r rune) rune {
			if r <= ' ' || r == '\u200b' {
				return -1
			}
			return r
		}, string(got))
		if strings.Contains(visible, testToken) {
			t.Errorf("%s: the body without its invisible characters holds the token: %q", tc.name, visible)
		}
		if err == nil || strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: Do: %v", tc.name, err)
		}
	}
}
