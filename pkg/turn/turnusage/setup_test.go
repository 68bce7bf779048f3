package turnusage_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/gqlcontract"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// setup starts a fake without a relay and returns it with a usage client whose every query and
// answer is checked against the schema.
func setup(t *testing.T, fakeOpts []turntest.Option, opts ...turnusage.Option) (*turntest.Server, *turnusage.Client, *gqlcontract.Transport) {
	t.Helper()
	return setupTurn(t, fakeOpts, nil, opts...)
}

// setupTurn is setup with options for the turn.Client the usage client sends through, applied last.
func setupTurn(t *testing.T, fakeOpts []turntest.Option, turnOpts []turn.Option, opts ...turnusage.Option) (*turntest.Server, *turnusage.Client, *gqlcontract.Transport) {
	t.Helper()
	srv := turntest.NewServer(fakeOpts...)
	t.Cleanup(srv.Close)
	tr := &gqlcontract.Transport{TB: t, Base: srv.HTTPClient().Transport}
	tc, err := turn.NewClient(append(append(srv.ClientOptions(),
		turn.WithHTTPClient(&http.Client{Transport: tr}),
		turn.WithBackoff(time.Millisecond, 2*time.Millisecond),
	), turnOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := turnusage.NewClient(tc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, tr
}
