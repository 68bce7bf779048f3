package turnrelay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// attach starts a fake with fakeOpts and attaches a relay to it with opts; both close when the
// test ends.
func attach(t *testing.T, fakeOpts []turntest.Option, opts ...turnrelay.Option) (*turntest.Server, *turnrelay.Relay) {
	t.Helper()
	srv := turntest.NewServer(fakeOpts...)
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return srv, relay
}

// minted is a key and one ICE credential minted from it through the turn client.
type minted struct {
	key      turn.KeyWithSecret
	username string
	password string
	urls     []string
}

func mint(t *testing.T, srv *turntest.Server, ttl time.Duration) minted {
	t.Helper()
	ctx := context.Background()
	c := srv.Client()
	key, err := c.CreateKey(ctx, turn.CreateKeyParams{Name: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	return mintFrom(t, srv, key, ttl)
}

func mintFrom(t *testing.T, srv *turntest.Server, key turn.KeyWithSecret, ttl time.Duration) minted {
	t.Helper()
	ice, err := srv.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	m := minted{key: key}
	for _, s := range ice.Servers {
		m.urls = append(m.urls, s.URLs...)
		if s.Username != "" {
			m.username, m.password = s.Username, s.Credential.Reveal()
		}
	}
	if m.username == "" {
		t.Fatalf("no TURN credential in %v", ice.Servers)
	}
	return m
}

// allocation is a pion TURN client and its relayed socket.
type allocation struct {
	client *pionturn.Client
	relay  net.PacketConn
}

// allocate makes a UDP allocation on server, reached over network ("udp", "tcp" or "tls").
func allocate(t *testing.T, server *turnrelay.Relay, network, username, password string) (*allocation, error) {
	t.Helper()
	var conn net.PacketConn
	var addr string
	switch network {
	case "udp":
		addr = server.UDPAddr
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = pc
	case "tcp":
		addr = server.TCPAddr
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	case "tls":
		addr = server.TLSAddr
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: server.RootCAs(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	}
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: username, Password: password, Conn: conn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); conn.Close() })
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	relay, err := client.AllocateWithContext(ctx)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { relay.Close() })
	return &allocation{client: client, relay: relay}, nil
}

// echo sends msg from the relay to a local UDP socket, which echoes it back; it returns what came back.
func echo(t *testing.T, a *allocation, msg []byte) []byte {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			peer.WriteTo(buf[:n], from)
		}
	}()
	got := make([]byte, 1500)
	// UDP may drop a packet even on loopback: send until the echo comes back or the deadline passes.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := a.relay.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		a.relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := a.relay.ReadFrom(got)
		if err == nil {
			return got[:n]
		}
	}
	t.Fatal("no echo through the relay")
	return nil
}

func wantUnauthorized(t *testing.T, err error) {
	t.Helper()
	var te *stun.TurnError
	if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeUnauthorized {
		t.Fatalf("allocate: got %v, want a 401 TURN error", err)
	}
}

func TestRelayAnswersPointAtIt(t *testing.T) {
	srv, relay := attach(t, nil, turnrelay.WithTLS())
	m := mint(t, srv, time.Hour)
	want := []string{
		"stun:" + relay.UDPAddr,
		"turn:" + relay.UDPAddr + "?transport=udp",
		"turn:" + relay.TCPAddr + "?transport=tcp",
		"turns:" + relay.TLSAddr + "?transport=tcp",
	}
	if strings.Join(m.urls, " ") != strings.Join(want, " ") || strings.Join(relay.URLs(), " ") != strings.Join(want, " ") {
		t.Fatalf("urls = %v, Relay.URLs = %v, want %v", m.urls, relay.URLs(), want)
	}
	if pem := relay.CertificatePEM(); !bytes.HasPrefix(pem, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("CertificatePEM = %q", pem)
	}
	if !strings.HasPrefix(relay.UDPAddr, "127.0.0.1:") {
		t.Errorf("relay not on loopback: %s", relay.UDPAddr)
	}
}

func TestRelayCarriesTrafficOverEveryTransport(t *testing.T) {
	srv, relay := attach(t, nil, turnrelay.WithTLS())
	m := mint(t, srv, time.Hour)
	var total, each int64
	for _, network := range []string{"udp", "tcp", "tls"} {
		a, err := allocate(t, relay, network, m.username, m.password)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if ip := a.relay.LocalAddr().(*net.UDPAddr).IP; !ip.IsLoopback() {
			t.Errorf("%s: relayed address %v is not loopback", network, a.relay.LocalAddr())
		}
		msg := []byte("hello over " + network)
		if got := echo(t, a, msg); !bytes.Equal(got, msg) {
			t.Fatalf("%s: echo = %q, want %q", network, got, msg)
		}
		// Both ways, at least once each; lost packets resent add more. What the peer echoed was
		// sent to the client (egress); what the client sent was received from it (ingress).
		each += int64(len(msg))
		total += 2 * int64(len(msg))
		if got := srv.RelayedBytes(m.username); got < total {
			t.Errorf("%s: RelayedBytes = %d, want at least %d", network, got, total)
		}
		if got := srv.Relayed(m.username); got.Egress < each || got.Ingress < each {
			t.Errorf("%s: Relayed = %+v, want at least %d each way", network, got, each)
		}
	}
	if relay.Allocations() != 3 {
		t.Errorf("Allocations = %d, want 3", relay.Allocations())
	}
}

// The relay reports what it sent to the client as egress and what it received from it as
// ingress: the client sends 1 byte at a time, the peer answers each with 200.
func TestRelayReportsDirections(t *testing.T) {
	srv, relay := attach(t, nil)
	m := mint(t, srv, time.Hour)
	a, err := allocate(t, relay, "udp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() {
		buf := make([]byte, 1500)
		answer := bytes.Repeat([]byte("a"), 200)
		for {
			_, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			peer.WriteTo(answer, from)
		}
	}()
	got := make([]byte, 1500)
	var sent int64
	for deadline := time.Now().Add(10 * time.Second); ; sent++ {
		if time.Now().After(deadline) {
			t.Fatal("no answer through the relay")
		}
		if _, err := a.relay.WriteTo([]byte("q"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		a.relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := a.relay.ReadFrom(got); err == nil && n == 200 {
			sent++ // this round's send, which the loop's post statement does not count
			break
		}
	}
	// Sends still in flight, or lost on the way, are not counted yet: ingress is at most what
	// was sent, and at least the one that was answered.
	r := srv.Relayed(m.username)
	if r.Username != m.username || r.Egress < 200 || r.Egress%200 != 0 || r.Ingress < 1 || r.Ingress > sent {
		t.Errorf("Relayed = %+v, want egress a multiple of 200 and ingress from 1 to %d", r, sent)
	}
}

func TestRelayRefusesDeadCredentials(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	var logs syncbuf.Buffer
	srv, relay := attach(t, []turntest.Option{turntest.WithClock(clock.Now)}, turnrelay.WithClock(clock.Now), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()

	revoked := mint(t, srv, time.Hour)
	if _, err := allocate(t, relay, "udp", revoked.username, revoked.password); err != nil {
		t.Fatalf("live credential: %v", err)
	}
	err := srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: revoked.key.ID, KeySecret: revoked.key.Secret, Username: revoked.username})
	if err != nil {
		t.Fatal(err)
	}
	_, err = allocate(t, relay, "udp", revoked.username, revoked.password)
	wantUnauthorized(t, err)

	live := mintFrom(t, srv, revoked.key, time.Hour)
	_, err = allocate(t, relay, "tcp", live.username, "not the credential")
	wantUnauthorized(t, err)

	expiring := mintFrom(t, srv, revoked.key, time.Minute)
	clock.Add(time.Minute)
	_, err = allocate(t, relay, "udp", expiring.username, expiring.password)
	wantUnauthorized(t, err)

	orphan := mintFrom(t, srv, revoked.key, time.Hour)
	if _, err := srv.Client().DeleteKey(ctx, turn.KeyParams{KeyID: revoked.key.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = allocate(t, relay, "udp", orphan.username, orphan.password)
	wantUnauthorized(t, err)

	// Every refusal is logged with its reason, and no credential reaches the log.
	out := logs.String()
	for _, reason := range []string{"credential revoked", "wrong credential", "credential expired", "the credential's key was deleted"} {
		if !strings.Contains(out, reason) {
			t.Errorf("no %q in the relay's log:\n%s", reason, out)
		}
	}
	for _, secret := range []string{revoked.password, expiring.password, orphan.password, revoked.key.Secret.Reveal()} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret reached the relay's log:\n%s", out)
		}
	}
}

func TestRelayCountsByCustomIdentifier(t *testing.T) {
	srv, relay := attach(t, nil)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	// Two credentials of one user, minted as curl would, with a customIdentifier.
	var users []string
	var passwords []string
	for range 2 {
		req, _ := http.NewRequest("POST", srv.ICEBaseURL+"/turn/keys/"+key.ID+"/credentials/generate-ice-servers",
			strings.NewReader(`{"ttl": 600, "customIdentifier": "user-42"}`))
		req.Header.Set("Authorization", "Bearer "+key.Secret.Reveal())
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			IceServers []struct {
				Username, Credential string
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || len(out.IceServers) != 2 {
			t.Fatalf("generate-ice-servers: %d %v %+v", resp.StatusCode, err, out)
		}
		users, passwords = append(users, out.IceServers[1].Username), append(passwords, out.IceServers[1].Credential)
	}
	for i := range users {
		a, err := allocate(t, relay, "udp", users[i], passwords[i])
		if err != nil {
			t.Fatal(err)
		}
		echo(t, a, []byte("ping"))
	}
	a, b := srv.RelayedBytes(users[0]), srv.RelayedBytes(users[1])
	if a < 8 || b < 8 {
		t.Fatalf("RelayedBytes = %d, %d; want at least 8 each", a, b)
	}
	if got := srv.RelayedBytesByIdentifier("user-42"); got != a+b {
		t.Errorf("RelayedBytesByIdentifier = %d, want %d", got, a+b)
	}
	if got := srv.RelayedBytesByIdentifier("someone-else"); got != 0 {
		t.Errorf("RelayedBytesByIdentifier(unknown) = %d, want 0", got)
	}
}

func TestRelaySharesOnePortForUDPAndTCP(t *testing.T) {
	_, relay := attach(t, nil)
	_, udpPort, _ := net.SplitHostPort(relay.UDPAddr)
	_, tcpPort, _ := net.SplitHostPort(relay.TCPAddr)
	if udpPort != tcpPort {
		t.Errorf("UDP on %s, TCP on %s: want one port", udpPort, tcpPort)
	}
}
