package turn_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cfturn/cfturn/pkg/turn"
)

const (
	testToken   = "tok_0123456789abcdefghijklmnopqrstuvwxyzAB"
	testAccount = "023e105f4ecef8ad9ca31a8372d0c353"
	testKeyID   = "2a95132c15732412d22c1476fa83f27a"
	testSecret  = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"
)

// canned returns a client whose every request gets the same answer.
func canned(t *testing.T, status int, contentType, body string, header map[string]string, opts ...turn.Option) *turn.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	base := []turn.Option{
		turn.WithGetenv(nil), turn.WithAPIToken(testToken), turn.WithAccountID(testAccount),
		turn.WithBaseURL(ts.URL + "/client/v4"), turn.WithICEBaseURL(ts.URL + "/v1"), turn.WithRetry(0),
	}
	c, err := turn.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The Error text is part of the API: frozen here.
func TestErrorTextGolden(t *testing.T) {
	ray := map[string]string{"Cf-Ray": "8f1e2d3c4b5a6978-SJC"}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		call   func(*turn.Client) error
		want   string
	}{
		{
			"envelope", 403, "application/json",
			`{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`,
			func(c *turn.Client) error { _, err := c.CreateKey(ctx, turn.CreateKeyParams{}); return err },
			"turn: create key: 403 Forbidden: Authentication error (10000) [cf-ray 8f1e2d3c4b5a6978-SJC]",
		},
		{
			"two errors", 400, "application/json",
			`{"success":false,"errors":[{"code":1001,"message":"a"},{"code":1002,"message":"b"}],"messages":[]}`,
			func(c *turn.Client) error { _, err := c.ListKeys(ctx, turn.ListKeysParams{}); return err },
			"turn: list keys: 400 Bad Request: a (1001); b (1002) [cf-ray 8f1e2d3c4b5a6978-SJC]",
		},
		{
			"html page", 502, "text/html", "<html><body>Bad gateway</body></html>",
			func(c *turn.Client) error { _, err := c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID}); return err },
			`turn: get key: 502 Bad Gateway: unexpected response: text/html body, not JSON: "<html><body>Bad gateway</body></html>" [cf-ray 8f1e2d3c4b5a6978-SJC]`,
		},
		{
			"success false with 200", 200, "application/json",
			`{"success":false,"errors":[{"code":10500,"message":"oops"}],"messages":[]}`,
			func(c *turn.Client) error { _, err := c.DeleteKey(ctx, turn.KeyParams{KeyID: testKeyID}); return err },
			"turn: delete key: 200 OK: oops (10500): unexpected response: success is false [cf-ray 8f1e2d3c4b5a6978-SJC]",
		},
		{
			"plain ICE error", 401, "text/plain", "Unauthorized\n",
			func(c *turn.Client) error {
				_, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Minute})
				return err
			},
			`turn: generate ICE servers: 401 Unauthorized: "Unauthorized" [cf-ray 8f1e2d3c4b5a6978-SJC]`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(canned(t, tc.status, tc.ctype, tc.body, ray))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error text\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestAPIErrorDetails(t *testing.T) {
	c := canned(t, 404, "application/json",
		`{"success":false,"errors":[{"code":10006,"message":"not found","documentation_url":"https://developers.cloudflare.com/x","source":{"pointer":"/key_id"}}],"messages":[{"code":1,"message":"note"}],"result":null}`,
		map[string]string{"Cf-Ray": "abc-SJC"})
	_, err := c.GetKey(context.Background(), turn.KeyParams{KeyID: testKeyID})
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("%v is not an *APIError", err)
	}
	want := &turn.APIError{
		Operation: "get key", Method: "GET", Path: "/accounts/{account_id}/calls/turn_keys/{key_id}",
		StatusCode: 404, RayID: "abc-SJC", Attempts: 1,
		Errors:   []turn.Message{{Code: 10006, Message: "not found", DocumentationURL: "https://developers.cloudflare.com/x", SourcePointer: "/key_id"}},
		Messages: []turn.Message{{Code: 1, Message: "note"}},
	}
	if diff := cmp.Diff(want, apiErr, cmpopts.IgnoreUnexported(turn.APIError{})); diff != "" {
		t.Errorf("APIError (-want +got):\n%s", diff)
	}
}

func TestErrorClasses(t *testing.T) {
	classes := []error{turn.ErrBadRequest, turn.ErrUnauthorized, turn.ErrForbidden, turn.ErrNotFound,
		turn.ErrRateLimited, turn.ErrServer, turn.ErrUnexpectedResponse}
	envelope := `{"success":false,"errors":[{"code":1,"message":"m"}],"messages":[]}`
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
		want   []error
	}{
		{400, "application/json", envelope, []error{turn.ErrBadRequest}},
		{422, "application/json", envelope, []error{turn.ErrBadRequest}},
		{401, "application/json", envelope, []error{turn.ErrUnauthorized}},
		{403, "application/json", envelope, []error{turn.ErrForbidden}},
		{404, "application/json", envelope, []error{turn.ErrNotFound}},
		{429, "application/json", envelope, []error{turn.ErrRateLimited}},
		{500, "application/json", envelope, []error{turn.ErrServer}},
		{503, "text/html", "<html>down</html>", []error{turn.ErrServer, turn.ErrUnexpectedResponse}},
		{200, "application/json", "", []error{turn.ErrUnexpectedResponse}},
		{200, "application/json", `{"success":true,"errors":[],"messages":[],"res`, []error{turn.ErrUnexpectedResponse}},
		{200, "application/json", `{"success":true,"errors":[],"messages":[]}`, []error{turn.ErrUnexpectedResponse}},
		{200, "application/json", `{"success":true,"errors":[],"messages":[],"result":{"name":"no uid"}}`, []error{turn.ErrUnexpectedResponse}},
		{200, "application/json", `[1,2,3]`, []error{turn.ErrUnexpectedResponse}},
		{200, "application/json", envelope, []error{turn.ErrUnexpectedResponse}},
		{404, "application/json", `{"success":false,"errors":[],"messages":[]}`, []error{turn.ErrNotFound, turn.ErrUnexpectedResponse}},
	} {
		c := canned(t, tc.status, tc.ctype, tc.body, nil)
		_, err := c.GetKey(context.Background(), turn.KeyParams{KeyID: testKeyID})
		var apiErr *turn.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
			t.Errorf("%d %.30q: %v, want an *APIError with the status", tc.status, tc.body, err)
			continue
		}
		for _, class := range classes {
			if got, want := errors.Is(err, class), containsErr(tc.want, class); got != want {
				t.Errorf("%d %.30q: errors.Is(%v) = %v, want %v", tc.status, tc.body, class, got, want)
			}
		}
	}
}

func containsErr(list []error, e error) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// The ICE API answers without the envelope; its success body is checked too.
func TestICEUnexpectedBodies(t *testing.T) {
	for _, body := range []string{"", "{}", `{"iceServers":[]}`, `{"iceServers":[{"urls":[]}]}`, `{"iceServers":"x"}`, "<html>"} {
		c := canned(t, 201, "application/json", body, nil)
		_, err := c.GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Minute})
		if !errors.Is(err, turn.ErrUnexpectedResponse) {
			t.Errorf("body %q: %v, want ErrUnexpectedResponse", body, err)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.client.ListKeys(ctx, turn.ListKeysParams{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled in the chain", err)
	}
	if !strings.HasPrefix(err.Error(), "turn: list keys: ") {
		t.Errorf("error %q does not say what the client was doing", err)
	}
}

// A body over the size cap is an *APIError that keeps the status and cf-ray.
func TestBodyOverCap(t *testing.T) {
	big := `{"success":true,"errors":[],"messages":[],"result":"` + strings.Repeat("x", 4096) + `"}`
	c := canned(t, 200, "application/json", big, map[string]string{"Cf-Ray": "big-SJC"}, turn.WithMaxResponseBytes(1024))
	_, err := c.ListKeys(context.Background(), turn.ListKeysParams{})
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, turn.ErrUnexpectedResponse) || apiErr.StatusCode != 200 || apiErr.RayID != "big-SJC" {
		t.Fatalf("%v (%+v)", err, apiErr)
	}
	if !strings.Contains(err.Error(), "body over the 1024-byte limit") {
		t.Errorf("error %q does not name the limit", err)
	}
}

// A 401 or 403 says which credential and which permission: list and get need "Calls Read" or
// "Calls Write", the writes "Calls Write", the ICE calls the TURN key's own secret.
func TestHintNamesPermission(t *testing.T) {
	ctx := context.Background()
	envelope := `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`
	ice := turn.GenerateICEServersParams{KeyID: testKeyID, KeySecret: turn.NewSecret(testSecret), TTL: time.Minute}
	for _, tc := range []struct {
		name   string
		status int
		call   func(*turn.Client) error
		want   string
	}{
		{"list 403", 403, func(c *turn.Client) error { _, err := c.ListKeys(ctx, turn.ListKeysParams{}); return err }, `"Calls Read" or "Calls Write"`},
		{"get 403", 403, func(c *turn.Client) error { _, err := c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID}); return err }, `"Calls Read" or "Calls Write"`},
		{"create 403", 403, func(c *turn.Client) error { _, err := c.CreateKey(ctx, turn.CreateKeyParams{}); return err }, `need "Calls Write"`},
		{"update 403", 403, func(c *turn.Client) error {
			_, err := c.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: testKeyID, Name: "n"})
			return err
		}, `need "Calls Write"`},
		{"delete 403", 403, func(c *turn.Client) error { _, err := c.DeleteKey(ctx, turn.KeyParams{KeyID: testKeyID}); return err }, `need "Calls Write"`},
		{"list 401", 401, func(c *turn.Client) error { _, err := c.ListKeys(ctx, turn.ListKeysParams{}); return err }, "API token was refused"},
		{"ICE 401", 401, func(c *turn.Client) error { _, err := c.GenerateICEServers(ctx, ice); return err }, "TURN key's secret was refused"},
		{"404", 404, func(c *turn.Client) error { _, err := c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID}); return err }, ""},
	} {
		err := tc.call(canned(t, tc.status, "application/json", envelope, nil))
		var apiErr *turn.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("%s: %v is not an *APIError", tc.name, err)
		}
		if got := apiErr.Hint(); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: hint %q, want one saying %q", tc.name, got, tc.want)
		}
	}
}

// Cloudflare's schema lets a delete failure be {}: that is an *APIError of its status class, not a
// decoding error. For other operations {} is an unexpected body, said in words.
func TestDeleteFailureEmptyObject(t *testing.T) {
	ctx := context.Background()
	c := canned(t, 404, "application/json", "{}", map[string]string{"Cf-Ray": "abc-SJC"})
	_, err := c.DeleteKey(ctx, turn.KeyParams{KeyID: testKeyID})
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, turn.ErrNotFound) || errors.Is(err, turn.ErrUnexpectedResponse) {
		t.Fatalf("%v: want an *APIError matching ErrNotFound only", err)
	}
	if want := `turn: delete key: 404 Not Found: "{}" [cf-ray abc-SJC]`; err.Error() != want {
		t.Errorf("error text\n got: %s\nwant: %s", err, want)
	}
	_, err = c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID})
	if !errors.Is(err, turn.ErrNotFound) || !errors.Is(err, turn.ErrUnexpectedResponse) || !strings.Contains(err.Error(), "an empty JSON object, not a Cloudflare API envelope") {
		t.Errorf("get key with {}: %v", err)
	}
}

// A cf-ray header that is not a ray ID (a server echoing the token there, or a flood of bytes) is
// left out of errors and logs; a ray ID is kept.
func TestRayIDIsOnlyARayID(t *testing.T) {
	for _, tc := range []struct{ ray, want string }{
		{"8f1e2d3c4b5a6978-SJC", "8f1e2d3c4b5a6978-SJC"},
		{testToken, ""},
		{"Bearer " + testToken, ""},
		{strings.Repeat("a-", 100), ""},
		{"ray id; and more", ""},
	} {
		var logs strings.Builder
		c := canned(t, 403, "application/json", `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`,
			map[string]string{"Cf-Ray": tc.ray}, turn.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
		_, err := c.ListKeys(context.Background(), turn.ListKeysParams{})
		var apiErr *turn.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("cf-ray %.30q: %v, want an *APIError", tc.ray, err)
		}
		if apiErr.RayID != tc.want {
			t.Errorf("cf-ray %.30q: RayID %q, want %q (%v)", tc.ray, apiErr.RayID, tc.want, err)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
			t.Errorf("cf-ray %.30q: the token reached the error or the log", tc.ray)
		}
	}
}

// A 403 of an endpoint other than the key API (through Client.Do) gets no key-management hint.
func TestHintOfOtherEndpoints(t *testing.T) {
	e := &turn.APIError{Operation: "UsageTotal", Method: "POST", Path: "/graphql", StatusCode: 403}
	if h := e.Hint(); strings.Contains(h, "TURN keys") || !strings.Contains(h, "lacks a permission") {
		t.Errorf("hint %q, want one that names no key permission", h)
	}
}
