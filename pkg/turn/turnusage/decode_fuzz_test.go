package turnusage

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/Khan/genqlient/graphql"

	"github.com/cfturn/cfturn/gen/analytics"
	"github.com/cfturn/cfturn/pkg/turn"
)

// FuzzDecode feeds the decoder any status and body, answered on loopback and read by
// turn.Client.Do as every query is: it returns data or an *Error of a turn class, never panics,
// and never shows the token.
func FuzzDecode(f *testing.F) {
	const token = "fuzz-token-0123456789abcdefghijkl"
	var mu sync.Mutex
	var status int
	var body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	f.Cleanup(ts.Close)
	tc, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(token), turn.WithAccountID("0123456789abcdef0123456789abcdef"),
		turn.WithBaseURL(ts.URL+"/client/v4"), turn.WithHTTPClient(ts.Client()), turn.WithRetry(0))
	if err != nil {
		f.Fatal(err)
	}
	c, err := NewClient(tc)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"data":{"viewer":{"accounts":[{"callsTurnUsageAdaptiveGroups":[{"sum":{"egressBytes":1,"ingressBytes":2}}]}]}},"errors":null}`},
		{200, `{"data":null,"errors":[{"message":"not authorized for that account","extensions":{"code":"authz"}}]}`},
		{400, `{"data":null,"errors":[{"message":"query time range is too large","path":["viewer","accounts",0]}]}`},
		{403, `{"success":false,"errors":[{"code":10000,"message":"Authentication error ` + token + `"}]}`},
		{400, `{"data":null,"errors":[{"message":"bad token \u0066uzz-token-0123456789abcdefghijkl"}]}`},
		{502, `<html>bad gateway</html>`},
		{200, ``},
		{200, `{"data":{"viewer":{"accounts":[{"callsTurnUsageAdaptiveGroups":[{"sum":{"egressBytes":-1}}]}]}}}`},
	} {
		f.Add(seed.status, seed.body)
	}
	f.Fuzz(func(t *testing.T, s int, b string) {
		if s < 200 || s > 599 || s == http.StatusNoContent || s == http.StatusNotModified {
			return // no body, or not an answer net/http lets a handler give
		}
		mu.Lock()
		status, body = s, b
		mu.Unlock()
		resp := &graphql.Response{Data: &analytics.UsageTotalResponse{}}
		err := gql{c}.MakeRequest(context.Background(), &graphql.Request{OpName: "UsageTotal", Query: "query UsageTotal { viewer { zones { zoneTag } } }"}, resp)
		if err == nil {
			if s > 299 {
				t.Fatalf("status %d decoded as a success", s)
			}
			return
		}
		var e *Error
		var apiErr *turn.APIError
		switch {
		case errors.As(err, &apiErr):
			t.Fatalf("Do's own error, not the decoder's: %v", err)
		case !errors.As(err, &e) || e.class == nil:
			t.Fatalf("not a classified *Error: %v", err)
		}
		for _, class := range []error{turn.ErrBadRequest, turn.ErrUnauthorized, turn.ErrForbidden, turn.ErrRateLimited, turn.ErrServer, turn.ErrUnexpectedResponse, turn.ErrNotFound} {
			if errors.Is(err, class) {
				if strings.Contains(err.Error(), token) || strings.Contains(e.Excerpt, token) {
					t.Fatalf("the token is in %q", err)
				}
				for _, m := range e.Errors {
					if strings.Contains(m.Message+m.Code+strings.Join(m.Path, ""), token) {
						t.Fatalf("the token is in %+v", m)
					}
				}
				return
			}
		}
		t.Fatalf("%v matches no turn class", err)
	})
}
