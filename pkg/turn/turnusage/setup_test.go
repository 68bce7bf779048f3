package turnusage_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/gqlcontract"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// setup starts a fake without a relay and returns it with a usage client whose every query and
// answer is checked against the schema.
func setup(t *testing.T, fakeOpts []turntest.Option, opts ...turnusage.Option) (*turntest.Server, *turnusage.Client, *gqlcontract.Transport) {
	t.Helper()
	srv := turntest.NewServer(fakeOpts...)
	t.Cleanup(srv.Close)
	tr := &gqlcontract.Transport{TB: t, Base: srv.HTTPClient().Transport}
	c, err := turnusage.NewClient(append([]turnusage.Option{
		turnusage.WithBaseURL(srv.APIBaseURL),
		turnusage.WithAPIToken(srv.Token()),
		turnusage.WithAccountID(srv.AccountID()),
		turnusage.WithHTTPClient(&http.Client{Transport: tr}),
		turnusage.WithGetenv(nil),
		turnusage.WithBackoff(time.Millisecond, 2*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, tr
}
