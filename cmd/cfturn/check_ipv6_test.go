package main

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// cfturn check passes on the fake's relay listening on [::1]: the IPv6 URLs are dialled over
// IPv6, not refused.
func TestCheckCommandIPv6(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv, turnrelay.WithAddr("[::1]:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ice := mintJSON(t, srv, createKey(t, srv))
	if !strings.Contains(ice, "[::1]:") {
		t.Fatalf("the fake's answer is not on [::1]: %s", ice)
	}
	r := runWithStdin(ice, nil, "check", "--file", "-", "--json", "--timeout", "10s")
	r.check(t, 0)
	var report struct {
		Results []struct{ URL, Result string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatal(err)
	}
	for _, res := range report.Results {
		if res.Result != "ok" || !strings.Contains(res.URL, "[::1]:") {
			t.Errorf("%s: %s, want ok", res.URL, res.Result)
		}
	}
	if len(report.Results) < 3 {
		t.Errorf("%d results, want stun and turn over udp and tcp", len(report.Results))
	}
}
