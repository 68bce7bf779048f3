package turn_test

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
const prefix = "/mounted/here"

type env struct {
	fake     *turntest.Fake
	client   *turn.Client
	contract *contract.Transport
	apiBase  string
	iceBase  string
}

// setup starts the fake behind a contract-validating transport and returns a client for it with
// fast retries. Extra options are applied last.
func setup(t *testing.T, opts ...turn.Option) *env {
	t.Helper()
	return setupFake(t, turntest.New(), opts...)
}

// setupFake is setup with a fake made with options of its own.
func setupFake(t *testing.T, fake *turntest.Fake, opts ...turn.Option) *env {
	t.Helper()
	ts := httptest.NewServer(http.StripPrefix(prefix, fake.Handler()))
	t.Cleanup(ts.Close)
	e := &env{
		fake:     fake,
		contract: &contract.Transport{TB: t, Base: ts.Client().Transport},
		apiBase:  ts.URL + prefix + "/client/v4",
		iceBase:  ts.URL + prefix + "/v1",
	}
	base := []turn.Option{
		turn.WithGetenv(nil),
		turn.WithAPIToken(fake.Token()),
		turn.WithAccountID(fake.AccountID()),
		turn.WithBaseURL(e.apiBase),
		turn.WithICEBaseURL(e.iceBase),
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
