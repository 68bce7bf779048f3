package turnrelay_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/gqlcontract"
	"github.com/cfturn/cfturn/internal/relaytest"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// The relay's real traffic shows up in the analytics, byte for byte: what the client sent to the
// peer is ingress, what the peer sent back is egress, under the credential's key, username and
// customIdentifier.
func TestAnalyticsCountsWhatTheRelayCarried(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour, CustomIdentifier: "customer-7"})
	if err != nil {
		t.Fatal(err)
	}
	user, pass := ice.Servers[1].Username, ice.Servers[1].Credential.Reveal()

	// Ten datagrams of 200 bytes out, each answered with one three times as long.
	sent, received := relaytest.Exchange(t, relay.TCPAddr, user, pass, 10, 200, 3)

	tr := &gqlcontract.Transport{TB: t, Base: srv.HTTPClient().Transport}
	tc, err := turn.NewClient(append(srv.ClientOptions(), turn.WithHTTPClient(&http.Client{Transport: tr}))...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := turnusage.NewClient(tc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rep, err := c.Usage(ctx, turnusage.Query{From: now.Add(-time.Hour), To: now,
		By: []turnusage.Dimension{turnusage.ByKey, turnusage.ByIdentifier, turnusage.ByUsername}})
	if err != nil {
		t.Fatal(err)
	}
	want := turnusage.Row{KeyID: key.ID, CustomIdentifier: "customer-7", Username: user, EgressBytes: uint64(received), IngressBytes: uint64(sent)}
	if len(rep.Rows) != 1 || rep.Rows[0] != want {
		t.Fatalf("rows = %+v\nwant [%+v]", rep.Rows, want)
	}
	if got := srv.RelayedBytes(user); got != int64(sent+received) {
		t.Errorf("RelayedBytes = %d, analytics %d", got, sent+received)
	}
}
