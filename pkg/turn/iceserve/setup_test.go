package iceserve_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/contract"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// prefix mounts the fake under a path of its own, so a client that builds absolute paths
// instead of appending to its base URL fails loudly.
const (
	prefix    = "/mounted/here"
	testKeyID = "2a95132c15732412d22c1476fa83f27a" // well-formed, unknown to any fake
)

// env is the fake behind a contract-validating transport, and a client for it.
type env struct {
	fake     *turntest.Fake
	client   *turn.Client
	contract *contract.Transport
}

// setupFake is setup with a fake made with options of its own.
func setupFake(t *testing.T, fake *turntest.Fake, opts ...turn.Option) *env {
	t.Helper()
	ts := httptest.NewServer(http.StripPrefix(prefix, fake.Handler()))
	t.Cleanup(ts.Close)
	e := &env{fake: fake, contract: &contract.Transport{TB: t, Base: ts.Client().Transport}}
	base := []turn.Option{
		turn.WithGetenv(nil),
		turn.WithAPIToken(fake.Token()),
		turn.WithAccountID(fake.AccountID()),
		turn.WithBaseURL(ts.URL + prefix + "/client/v4"),
		turn.WithICEBaseURL(ts.URL + prefix + "/v1"),
		turn.WithHTTPClient(&http.Client{Transport: e.contract}),
		turn.WithBackoff(time.Millisecond, 5*time.Millisecond),
	}
	c, err := turn.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
