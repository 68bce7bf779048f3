package turn_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opt  turn.Option
		want string
	}{
		{turn.WithAPIToken(""), "token is empty"},
		{turn.WithAPIToken("has space"), "API token has a space at character 4"},
		{turn.WithAccountID("x/y"), "account ID"},
		{turn.WithBaseURL("http://api.example.com/client/v4"), "plain http; use https"},
		{turn.WithBaseURL("api.cloudflare.com"), `"api.cloudflare.com" is not an absolute http(s) URL`},
		{turn.WithBaseURL(""), `"" is not an absolute http(s) URL`},
		{turn.WithBaseURL("127.0.0.1:8787/client/v4"), `"127.0.0.1:8787/client/v4" is not an absolute http(s) URL`},
		{turn.WithBaseURL(testToken), "a value of 42 characters (not shown: it looks like a credential) is not an absolute http(s) URL"},
		{turn.WithBaseURL("https://user:pw@api.example.com"), "carries user information"},
		{turn.WithBaseURL("https://api.example.com/?x=1"), "query or fragment"},
		{turn.WithICEBaseURL("ftp://x"), "not an absolute http(s) URL"},
		{turn.WithHTTPClient(nil), "client is nil"},
		{turn.WithUserAgent("a\nb"), "user agent has a newline at character 2"},
		{turn.WithUserAgent("a\x7fb"), `user agent has '\x7f' at character 2`},
		{turn.WithRetry(-1), "WithRetry(-1)"},
		{turn.WithBackoff(0, time.Second), "need 0 < base <= max"},
		{turn.WithBackoff(time.Second, time.Millisecond), "need 0 < base <= max"},
		{turn.WithRetryAfterMax(-1), "must not be negative"},
		{turn.WithTimeout(-1), "must not be negative"},
		{turn.WithMaxResponseBytes(10), "at least 1024"},
	} {
		_, err := turn.NewClient(turn.WithGetenv(nil), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one saying %q", err, tc.want)
		}
	}
	if strings.Contains(func() string {
		_, err := turn.NewClient(turn.WithBaseURL("https://user:pw@x.example"))
		return err.Error()
	}(), "pw") {
		t.Error("a base URL's password reached the error")
	}
}

func TestLoopbackHTTPAllowed(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8787/client/v4", "http://localhost/client/v4", "http://[::1]:1/v1"} {
		if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithBaseURL(u), turn.WithICEBaseURL(u)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestEnvironmentFallback(t *testing.T) {
	e := setup(t)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": e.fake.Token(), "CLOUDFLARE_ACCOUNT_ID": e.fake.AccountID()}
	c, err := turn.NewClient(turn.WithGetenv(func(k string) string { return env[k] }),
		turn.WithBaseURL(e.apiBase), turn.WithHTTPClient(&http.Client{Transport: e.contract}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccountID() != e.fake.AccountID() {
		t.Errorf("AccountID = %q", c.AccountID())
	}
	if _, err := c.ListKeys(context.Background(), turn.ListKeysParams{}); err != nil {
		t.Fatalf("client configured from the environment: %v", err)
	}

	// Options win over the environment.
	c, err = turn.NewClient(turn.WithGetenv(func(k string) string { return env[k] }), turn.WithAPIToken("other"),
		turn.WithBaseURL(e.apiBase), turn.WithHTTPClient(&http.Client{Transport: e.contract}), turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListKeys(context.Background(), turn.ListKeysParams{}); err == nil {
		t.Error("WithAPIToken did not override CLOUDFLARE_API_TOKEN")
	}

	t.Setenv("CLOUDFLARE_ACCOUNT_ID", "not/valid")
	if _, err := turn.NewClient(); err == nil || !strings.Contains(err.Error(), "CLOUDFLARE_ACCOUNT_ID") {
		t.Errorf("bad CLOUDFLARE_ACCOUNT_ID from os.Getenv: %v", err)
	}
}

func TestWithHTTPClientDoesNotMutate(t *testing.T) {
	hc := &http.Client{Timeout: time.Minute}
	if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithHTTPClient(hc)); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil || hc.Timeout != time.Minute {
		t.Error("NewClient changed the caller's *http.Client")
	}
}

func TestUserAgent(t *testing.T) {
	e := setup(t, turn.WithUserAgent("myapp/1.2"))
	var got string
	e.contract.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("User-Agent")
		return http.DefaultTransport.RoundTrip(r)
	})
	if _, err := e.client.ListKeys(context.Background(), turn.ListKeysParams{}); err != nil {
		t.Fatal(err)
	}
	if want := "myapp/1.2 cfturn-go/" + turn.Version; got != want {
		t.Errorf("User-Agent = %q, want %q", got, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The package documentation states the defaults; they must be the code's.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(strings.ReplaceAll(string(doc), "\n//", " ")), " ")
	for _, want := range []string{
		"retried up to 3 times (DefaultMaxRetries",
		"backoff starting at 250ms and capped at 5s",
		"Retry-After up to 30s",
		"attempt has a 30s timeout",
		"read up to 4 MiB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("doc.go does not say %q", want)
		}
	}
	if turn.DefaultMaxRetries != 3 || turn.DefaultBackoffBase != 250*time.Millisecond || turn.DefaultBackoffMax != 5*time.Second ||
		turn.DefaultRetryAfterMax != 30*time.Second || turn.DefaultAttemptTimeout != 30*time.Second || turn.DefaultMaxResponseBytes != 4<<20 {
		t.Error("a default changed: update doc.go, README.md and this test together")
	}
}

// WithBaseURL alone points ICE calls at the same server as key calls, whichever order the options
// come in, or is refused: a fake's key ID and secret never go to Cloudflare.
func TestICEBaseFollowsBaseURL(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	common := []turn.Option{turn.WithGetenv(nil), turn.WithAPIToken(srv.Token()), turn.WithAccountID(srv.AccountID()),
		turn.WithHTTPClient(srv.HTTPClient()), turn.WithRetry(0)}
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "ice-base"})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]turn.Option{
		{turn.WithBaseURL(srv.APIBaseURL)},
		{turn.WithBaseURL(srv.APIBaseURL + "/")},
		{turn.WithICEBaseURL(srv.ICEBaseURL), turn.WithBaseURL("http://127.0.0.1:1/elsewhere")},
		{turn.WithBaseURL("http://127.0.0.1:1/elsewhere"), turn.WithICEBaseURL(srv.ICEBaseURL)},
	} {
		c, err := turn.NewClient(append(common, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		before := srv.Requests()[string(turntest.OpGenerateIceServers)]
		if _, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Minute}); err != nil {
			t.Fatalf("%v: GenerateICEServers: %v", c, err)
		}
		if after := srv.Requests()[string(turntest.OpGenerateIceServers)]; after != before+1 {
			t.Errorf("%v: the fake saw %d ICE calls, want %d", c, after, before+1)
		}
	}

	_, err = turn.NewClient(append(common, turn.WithBaseURL(strings.TrimSuffix(srv.APIBaseURL, "/client/v4")))...)
	if err == nil || !strings.Contains(err.Error(), "does not end in /client/v4") || !strings.Contains(err.Error(), "pass WithICEBaseURL too") {
		t.Errorf("a key root the ICE root cannot be derived from, without WithICEBaseURL: %v", err)
	}
	// The defaults stay Cloudflare's, given explicitly or not.
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithBaseURL(turn.DefaultAPIBaseURL))
	if err != nil || !strings.Contains(fmt.Sprint(c), turn.DefaultICEBaseURL+"/") {
		t.Errorf("default key root: %v, %v", c, err)
	}
}

func TestAccountIDIsHex(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"nope", `account ID "nope" has 'n' at character 1; Cloudflare account IDs are 32 hex characters`},
		{"023e105f4ecef8ad9ca31a8372d0c35", `account ID "023e105f4ecef8ad9ca31a8372d0c35" is 31 characters long`},
		{"023e105f4ecef8ad9ca31a8372d0c35z", `has 'z' at character 32`},
	} {
		if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAccountID(tc.id)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithAccountID(%q): %v, want %q", tc.id, err, tc.want)
		}
		env := map[string]string{"CLOUDFLARE_ACCOUNT_ID": tc.id}
		if _, err := turn.NewClient(turn.WithGetenv(func(k string) string { return env[k] })); err == nil || !strings.Contains(err.Error(), "CLOUDFLARE_ACCOUNT_ID") {
			t.Errorf("CLOUDFLARE_ACCOUNT_ID=%q: %v", tc.id, err)
		}
	}
	if _, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAccountID("023E105F4ECEF8AD9CA31A8372D0C353")); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
}

// Clone changes what its options say and nothing else: the copy stops retrying, the original
// still retries, and both keep the base URLs and token.
func TestClone(t *testing.T) {
	e := setup(t, turn.WithRetry(2))
	once, err := e.client.Clone(turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *turn.Client
		want int
	}{{once, 1}, {e.client, 3}} {
		before := e.fake.Requests()[string(turntest.OpListTurnKeys)]
		if err := e.fake.InjectFault(turntest.Fault{Operation: turntest.OpListTurnKeys, Status: 500, Count: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.c.ListKeys(context.Background(), turn.ListKeysParams{}); !errors.Is(err, turn.ErrServer) {
			t.Fatalf("ListKeys through a failing fake: %v, want ErrServer", err)
		}
		e.fake.ClearFaults()
		if got := e.fake.Requests()[string(turntest.OpListTurnKeys)] - before; got != tc.want {
			t.Errorf("attempts: %d, want %d", got, tc.want)
		}
	}
	if _, err := e.client.Clone(turn.WithRetry(-1)); !strings.Contains(fmt.Sprint(err), "WithRetry(-1)") {
		t.Errorf("Clone with a bad option: %v", err)
	}
}
