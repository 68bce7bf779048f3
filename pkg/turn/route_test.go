package turn

import (
	"net/http"
	"testing"

	"github.com/cfturn/cfturn/gen/calls"
)

// For every valid pair of IDs, a rendered route gives exactly the URL the generated builder gives.
func TestRoutesMatchGeneratedBuilders(t *testing.T) {
	for _, base := range []string{"https://api.cloudflare.com/client/v4/", "http://127.0.0.1:8787/some/prefix/client/v4/"} {
		rts, err := newRoutes(base, base)
		if err != nil {
			t.Fatal(err)
		}
		for _, ids := range [][2]string{
			{"023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a"},
			{"A", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"},
			{"0", "00000000000000000000000000000000"},
		} {
			acct, key := ids[0], ids[1]
			for _, tc := range []struct {
				got   string
				build func() (*http.Request, error)
			}{
				{rts.keys.url(acct), func() (*http.Request, error) { return calls.NewListTurnKeysRequest(base, acct) }},
				{rts.key.url(acct, key), func() (*http.Request, error) { return calls.NewDeleteTurnKeyRequest(base, acct, key) }},
				{rts.ice.url(key), func() (*http.Request, error) {
					return calls.NewGenerateIceServersRequestWithBody(base, key, "", nil)
				}},
			} {
				want, err := tc.build()
				if err != nil {
					t.Fatal(err)
				}
				if tc.got != want.URL.String() {
					t.Errorf("route gives %s, the generated builder %s", tc.got, want.URL)
				}
			}
		}
	}
}

func FuzzRouteMatchesBuilder(f *testing.F) {
	f.Add("023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a")
	rts, err := newRoutes("https://api.cloudflare.com/client/v4/", "https://rtc.live.cloudflare.com/v1/")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, acct, key string) {
		if checkAccountID("op", acct) != nil || checkKeyID("op", key) != nil {
			return // validation refuses it before any URL is built
		}
		want, err := calls.NewUpdateTurnKeyRequestWithBody("https://api.cloudflare.com/client/v4/", acct, key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := rts.key.url(acct, key); got != want.URL.String() {
			t.Fatalf("route %s, builder %s", got, want.URL)
		}
	})
}
