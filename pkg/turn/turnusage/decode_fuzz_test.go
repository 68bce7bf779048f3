package turnusage

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Khan/genqlient/graphql"

	"github.com/cfturn/cfturn/gen/analytics"
	"github.com/cfturn/cfturn/pkg/turn"
)

// FuzzDecode feeds the decoder any status and body: it returns data or an *Error of a turn class,
// never panics, and never shows the token.
func FuzzDecode(f *testing.F) {
	const token = "fuzz-token-0123456789abcdefghijkl"
	c, err := NewClient(WithAPIToken(token), WithAccountID("0123456789abcdef0123456789abcdef"), WithGetenv(nil))
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
		{502, `<html>bad gateway</html>`},
		{200, ``},
		{200, `{"data":{"viewer":{"accounts":[{"callsTurnUsageAdaptiveGroups":[{"sum":{"egressBytes":-1}}]}]}}}`},
	} {
		f.Add(seed.status, seed.body)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 599 {
			return
		}
		resp := &graphql.Response{Data: &analytics.UsageTotalResponse{}}
		err := c.decode("UsageTotal", status, http.Header{}, []byte(body), resp)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d decoded as a success", status)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.class == nil {
			t.Fatalf("not a classified *Error: %v", err)
		}
		for _, class := range []error{turn.ErrBadRequest, turn.ErrUnauthorized, turn.ErrForbidden, turn.ErrRateLimited, turn.ErrServer, turn.ErrUnexpectedResponse, turn.ErrNotFound} {
			if errors.Is(err, class) {
				if strings.Contains(err.Error(), token) {
					t.Fatalf("the token is in %q", err)
				}
				return
			}
		}
		t.Fatalf("%v matches no turn class", err)
	})
}
