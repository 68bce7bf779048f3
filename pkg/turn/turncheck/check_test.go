package turncheck_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// fake is the fake with a relay attached, whose ICE answers point at the relay.
type fake struct {
	*turntest.Server
	relay *turnrelay.Relay
}

// startFake starts the fake and attaches a relay (TLS too); both close when the test ends.
func startFake(tb testing.TB) *fake {
	tb.Helper()
	srv := turntest.NewServer()
	tb.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv, turnrelay.WithTLS())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { relay.Close() })
	return &fake{srv, relay}
}

// setup starts the fake with its relay and mints a credential through pkg/turn.
func setup(t *testing.T) (*fake, turn.KeyWithSecret, turn.ICEServers) {
	t.Helper()
	srv := startFake(t)
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "check"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return srv, key, ice
}

func config(srv *fake) turncheck.Config {
	return turncheck.Config{Timeout: 10 * time.Second, TLSConfig: &tls.Config{RootCAs: srv.relay.RootCAs()}}
}

func username(ice turn.ICEServers) string {
	for _, s := range ice.Servers {
		if s.Username != "" {
			return s.Username
		}
	}
	return ""
}

func TestCheckEveryTransportAgainstTheFake(t *testing.T) {
	srv, _, ice := setup(t)
	report, err := turncheck.Check(context.Background(), ice.Servers, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 4 {
		t.Fatalf("%d results, want 4 (stun, turn udp, turn tcp, turns)", len(report.Results))
	}
	for i, want := range []string{"udp", "udp", "tcp", "tls"} {
		r := report.Results[i]
		if r.Status != turncheck.StatusOK || r.Transport != want || r.RTT <= 0 {
			t.Errorf("%s: %+v, want ok over %s with an RTT", r.URL, r, want)
		}
		if i > 0 && !strings.HasPrefix(r.RelayedAddress, "127.0.0.1:") {
			t.Errorf("%s: relayed address %q", r.URL, r.RelayedAddress)
		}
	}
	if !strings.HasPrefix(report.Results[0].MappedAddress, "127.0.0.1:") {
		t.Errorf("STUN mapped address %q", report.Results[0].MappedAddress)
	}
	if !report.TURNWorks() {
		t.Error("TURNWorks = false")
	}
	// Two allocations per TURN URL carried a ping each way at least.
	if got := srv.RelayedBytes(username(ice)); got < 3*2*2*16 {
		t.Errorf("the fake relayed %d bytes, want at least %d", got, 3*2*2*16)
	}
	// The relay is left as it was found: every allocation was released.
	deadline := time.Now().Add(5 * time.Second)
	for srv.relay.Allocations() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.relay.Allocations(); n != 0 {
		t.Errorf("%d allocations left on the relay", n)
	}
}

func TestCheckRevokedCredential(t *testing.T) {
	srv, key, ice := setup(t)
	err := srv.Client().RevokeICECredential(context.Background(), turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: username(ice)})
	if err != nil {
		t.Fatal(err)
	}
	report, err := turncheck.Check(context.Background(), ice.Servers, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	if report.Results[0].Status != turncheck.StatusOK {
		t.Errorf("STUN needs no credential: %+v", report.Results[0])
	}
	for _, r := range report.Results[1:] {
		if r.Status != turncheck.StatusAuthFailed {
			t.Errorf("%s: %+v, want auth failed", r.URL, r)
		}
	}
	if report.TURNWorks() {
		t.Error("TURNWorks = true with a revoked credential")
	}
	out, _ := json.Marshal(report)
	if secret := ice.Servers[1].Credential.Reveal(); strings.Contains(string(out), secret) {
		t.Errorf("the credential leaked into the report: %s", out)
	}
}

func TestCheckRefusedBlackHoledAndSkipped(t *testing.T) {
	// A UDP socket and a TCP listener that take packets and connections and never answer.
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	tcpHole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHole.Close()
	go func() {
		for {
			c, err := tcpHole.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// Ports nothing listens on: taken, then freed.
	closedUDP, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	closedUDP.Close()
	closedTCP, _ := net.Listen("tcp", "127.0.0.1:0")
	closedTCP.Close()

	servers := []turn.ICEServer{{
		URLs: []string{
			"turn:" + hole.LocalAddr().String() + "?transport=udp",
			"turn:" + tcpHole.Addr().String() + "?transport=tcp",
			"turn:" + closedUDP.LocalAddr().String() + "?transport=udp",
			"turn:" + closedTCP.Addr().String() + "?transport=tcp",
			"turn:127.0.0.1:53?transport=udp",
		},
		Username: "u", Credential: turn.NewSecret("c"),
	}, {URLs: []string{"turn:127.0.0.1:3478"}}}
	const timeout = 700 * time.Millisecond
	report, err := turncheck.Check(context.Background(), servers, turncheck.Config{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	want := []turncheck.Status{turncheck.StatusTimeout, turncheck.StatusTimeout, turncheck.StatusRefused, turncheck.StatusRefused, turncheck.StatusSkipped53, turncheck.StatusNoCreds}
	for i, r := range report.Results {
		if r.Status != want[i] {
			t.Errorf("%s: %q (%s), want %q", r.URL, r.Status, r.Detail, want[i])
		}
	}
	// Bounded by the timeout: generous slack for a loaded machine, far below a hang.
	if report.Elapsed > timeout+5*time.Second {
		t.Errorf("check took %v with a %v timeout", report.Elapsed, timeout)
	}
	if report.TURNWorks() {
		t.Error("TURNWorks = true")
	}
}

func TestCheckBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []turn.ICEServer
		want    string
	}{
		{"none", nil, "no URLs"},
		{"scheme", []turn.ICEServer{{URLs: []string{"http://example.com"}}}, `scheme "http"`},
		{"port", []turn.ICEServer{{URLs: []string{"turn:example.com:99999"}}}, `port "99999"`},
		{"query", []turn.ICEServer{{URLs: []string{"turn:example.com?transport=sctp"}}}, "?transport=udp"},
		{"host", []turn.ICEServer{{URLs: []string{"turn::3478"}}}, "no host"},
		{"timeout", []turn.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}, "timeout -1s is not between 0 and 5m0s"},
		{"too many", []turn.ICEServer{{URLs: make([]string, 65)}}, ""},
	} {
		if tc.name == "too many" {
			for i := range tc.servers[0].URLs {
				tc.servers[0].URLs[i] = "stun:127.0.0.1:3478"
			}
			tc.want = "more than 64"
		}
		cfg := turncheck.Config{}
		if tc.name == "timeout" {
			cfg.Timeout = -time.Second
		}
		_, err := turncheck.Check(context.Background(), tc.servers, cfg)
		if !errors.Is(err, turncheck.ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadInput mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestParseICEServers(t *testing.T) {
	for _, in := range []string{
		`{"iceServers":[{"urls":"stun:a:3478"},{"urls":["turn:a:3478?transport=udp"],"username":"u","credential":"c"}],"expiresAt":"2030-01-01T00:00:00Z"}`,
		`[{"urls":"stun:a:3478"},{"urls":["turn:a:3478?transport=udp"],"username":"u","credential":"c"}]`,
	} {
		servers, err := turncheck.ParseICEServers([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if len(servers) != 2 || servers[0].URLs[0] != "stun:a:3478" || servers[1].Username != "u" || servers[1].Credential.Reveal() != "c" {
			t.Errorf("%s: got %+v", in, servers)
		}
	}
	for _, in := range []string{``, `{`, `{"ice":[]}`, `[{"urls":3}]`, `"stun:a"`} {
		if _, err := turncheck.ParseICEServers([]byte(in)); !errors.Is(err, turncheck.ErrBadInput) {
			t.Errorf("%q: %v, want ErrBadInput", in, err)
		}
	}
}

// BenchmarkCheck times a full check against the fake's relay: a STUN binding and, for TURN over
// udp, tcp and tls, two allocations and a round trip through them. BENCHMARKS.md records it.
func BenchmarkCheck(b *testing.B) {
	srv := startFake(b)
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		b.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	cfg := config(srv)
	for b.Loop() {
		report, err := turncheck.Check(ctx, ice.Servers, cfg)
		if err != nil || !report.TURNWorks() {
			b.Fatalf("check: %v %+v", err, report.Results)
		}
	}
}
