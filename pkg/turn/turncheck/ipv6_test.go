package turncheck_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// ipv6Loopback skips the test on a machine without ::1 (some containers have IPv6 off), except
// under CI, whose machine has it.
func ipv6Loopback(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
}

// Every transport of the fake's relay listening on [::1] checks ok: the URLs are IPv6
// literals, the probe dials them over IPv6 and the relay hands out IPv6 relayed addresses.
func TestCheckIPv6AgainstTheFake(t *testing.T) {
	ipv6Loopback(t)
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv, turnrelay.WithAddr("[::1]:0"), turnrelay.WithTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "check6"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ice.Servers {
		for _, u := range s.URLs {
			if !strings.Contains(u, "[::1]:") {
				t.Fatalf("URL %q is not on [::1]", u)
			}
		}
	}
	report, err := turncheck.Check(ctx, ice.Servers, turncheck.Config{Timeout: 10 * time.Second, TLSConfig: &tls.Config{RootCAs: relay.RootCAs()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 4 {
		t.Fatalf("%d results, want 4 (stun, turn udp, turn tcp, turns)", len(report.Results))
	}
	for i, r := range report.Results {
		if r.Status != turncheck.StatusOK {
			t.Errorf("%s: %s (%s)", r.URL, r.Status, r.Detail)
		}
		if i > 0 && !strings.HasPrefix(r.RelayedAddress, "[::1]:") {
			t.Errorf("%s: relayed address %q, want one on [::1]", r.URL, r.RelayedAddress)
		}
	}
	if !strings.HasPrefix(report.Results[0].MappedAddress, "[::1]:") {
		t.Errorf("STUN mapped address %q, want [::1]:port", report.Results[0].MappedAddress)
	}
	if got := srv.RelayedBytes(username(ice)); got < 3*2*2*16 {
		t.Errorf("the fake relayed %d bytes, want at least %d", got, 3*2*2*16)
	}
}
