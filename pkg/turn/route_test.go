package turn

import (
	"net/http"
	"testing"

	"github.com/cfturn/cfturn/gen/callshttp"
)

var testBases = []string{
	"https://api.cloudflare.com/client/v4/",
	"http://127.0.0.1:8787/some/prefix/client/v4/",
	"http://[::1]:8787/with%20space/v1/",
}

// For every valid pair of IDs, a rendered route gives exactly the URL the request builder
// generated from the spec gives.
func TestRoutesMatchGeneratedBuilders(t *testing.T) {
	for _, base := range testBases {
		rts := newRoutes(base, base)
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
				{rts.keys.url(acct), func() (*http.Request, error) { return callshttp.NewListTurnKeysRequest(base, acct) }},
				{rts.key.url(acct, key), func() (*http.Request, error) { return callshttp.NewDeleteTurnKeyRequest(base, acct, key) }},
				{rts.ice.url(key), func() (*http.Request, error) {
					return callshttp.NewGenerateIceServersRequestWithBody(base, key, "", nil)
				}},
				{rts.revoke.url(key, "user name/ü%?#"), func() (*http.Request, error) {
					return callshttp.NewRevokeIceCredentialRequest(base, key, "user name/ü%?#")
				}},
			} {
				want, err := tc.build()
				if err != nil {
					t.Fatal(err)
				}
				got, err := http.NewRequest(http.MethodGet, tc.got, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got.URL.String() != want.URL.String() {
					t.Errorf("route gives %s, the generated builder %s", got.URL, want.URL)
				}
			}
		}
	}
}

func FuzzRouteMatchesBuilder(f *testing.F) {
	f.Add("023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a", "0123456789abcdef0123456789abcdef")
	f.Add("a", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "user name/ü%?#")
	rts := make([]routes, len(testBases))
	for i, base := range testBases {
		rts[i] = newRoutes(base, base)
	}
	f.Fuzz(func(t *testing.T, acct, key, username string) {
		if checkAccountID("op", acct) != nil || checkKeyID("op", key) != nil {
			return // validation refuses it before any URL is built
		}
		for i, base := range testBases {
			want, err := callshttp.NewUpdateTurnKeyRequestWithBody(base, acct, key, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := rts[i].key.url(acct, key); got != want.URL.String() {
				t.Fatalf("route %s, builder %s", got, want.URL)
			}
			if checkUsername("op", username) != nil {
				continue
			}
			want, err = callshttp.NewRevokeIceCredentialRequest(base, key, username)
			if err != nil {
				t.Fatal(err)
			}
			got, err := http.NewRequest(http.MethodPost, rts[i].revoke.url(key, username), nil)
			if err != nil {
				t.Fatalf("revoke route for %q: %v", username, err)
			}
			if got.URL.String() != want.URL.String() {
				t.Fatalf("revoke route %s, builder %s", got.URL, want.URL)
			}
		}
	})
}
