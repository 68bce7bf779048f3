package turnrelay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

func TestRelayKeepsAuthenticatedStreamConnections(t *testing.T) {
	t.Cleanup(turnrelay.SetStreamAuthTimeout(300 * time.Millisecond))
	srv, relay := attach(t, nil, turnrelay.WithTLS())
	m := mint(t, srv, time.Hour)
	var allocs []*allocation
	for _, network := range []string{"tcp", "tls"} {
		a, err := allocate(t, relay, network, m.username, m.password)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		allocs = append(allocs, a)
	}
	// A silent connection opened now is closed once the time to make an allocation is up; the
	// ones holding allocations outlive it.
	silent, err := net.Dial("tcp", relay.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent connection: read %v, want it closed by the relay", err)
	}
	for i, a := range allocs {
		if got := echo(t, a, []byte("still here")); !bytes.Equal(got, []byte("still here")) {
			t.Fatalf("allocation %d: echo %q", i, got)
		}
	}
}

// One credential cannot hold the relay's TCP slots: a connection whose allocation is refused is
// closed once the refusal is written, so more attempts than there are slots all get their 486,
// and another credential still gets a slot.
func TestRelayClosesStreamConnectionsRefusedAnAllocation(t *testing.T) {
	var logs syncbuf.Buffer
	srv, relay := attach(t, nil, turnrelay.WithTLS(), turnrelay.WithAllocationsPerCredential(2), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	m := mint(t, srv, time.Hour)
	for _, network := range []string{"tcp", "tls"} {
		if _, err := allocate(t, relay, network, m.username, m.password); err != nil {
			t.Fatal(err)
		}
	}
	for _, network := range []string{"tcp", "tls"} {
		for i := range turnrelay.MaxStreamConns + 44 {
			_, err := allocate(t, relay, network, m.username, m.password)
			var te *stun.TurnError
			if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeAllocQuotaReached {
				t.Fatalf("%s: attempt %d over the credential's allocations: %v, want 486 Allocation Quota Reached", network, i, err)
			}
		}
		other := mintFrom(t, srv, m.key, time.Hour)
		if _, err := allocate(t, relay, network, other.username, other.password); err != nil {
			t.Fatalf("%s: another credential: %v", network, err)
		}
	}
	if !strings.Contains(logs.String(), "2 allocations of one credential") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
}

func TestRelayLimitsAllocationsPerCredential(t *testing.T) {
	var logs syncbuf.Buffer
	srv, relay := attach(t, nil, turnrelay.WithAllocationsPerCredential(2), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	m := mint(t, srv, time.Hour)
	first, err := allocate(t, relay, "udp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := allocate(t, relay, "tcp", m.username, m.password); err != nil {
		t.Fatal(err)
	}
	_, err = allocate(t, relay, "udp", m.username, m.password)
	var te *stun.TurnError
	if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeAllocQuotaReached {
		t.Fatalf("third allocation of one credential: %v, want 486 Allocation Quota Reached", err)
	}
	if !strings.Contains(logs.String(), "2 allocations of one credential") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
	// Another credential of the same key is not held back.
	other := mintFrom(t, srv, m.key, time.Hour)
	if _, err := allocate(t, relay, "udp", other.username, other.password); err != nil {
		t.Fatalf("another credential: %v", err)
	}
	// An allocation given back frees its place.
	first.relay.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := allocate(t, relay, "udp", m.username, m.password); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no place came free after an allocation closed: %v", err)
		}
	}
}

func TestRelayPermitsFewLoopbackPeers(t *testing.T) {
	var logs syncbuf.Buffer
	srv, relay := attach(t, nil, turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	m := mint(t, srv, time.Hour)
	a, err := allocate(t, relay, "udp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	wantForbidden := func(peer net.IP, why string) {
		t.Helper()
		err := a.client.CreatePermission(&net.UDPAddr{IP: peer, Port: 9})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("permission for %v: %v, want 403 Forbidden", peer, err)
		}
		if !strings.Contains(logs.String(), why) {
			t.Errorf("no %q in the relay's log:\n%s", why, logs.String())
		}
	}
	wantForbidden(net.IPv4(10, 0, 0, 1), "peer not on loopback")
	// 64 distinct peers, then no more; one already permitted is still refreshed.
	for i := range 64 {
		if err := a.client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(i)), Port: 9}); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	wantForbidden(net.IPv4(127, 0, 2, 0), "64 peers of one allocation")
	if err := a.client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 1, 0), Port: 9}); err != nil {
		t.Errorf("refreshing a permitted peer: %v", err)
	}
	// The peers are counted per allocation, and forgotten with it.
	if n := relay.PeerCounts(); n != 1 {
		t.Errorf("peer counts of %d allocations, want 1", n)
	}
	a.relay.Close()
	for deadline := time.Now().Add(10 * time.Second); relay.PeerCounts() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the peer count outlived its allocation")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// mintMany mints n credentials of key, four at a time.
func mintMany(t *testing.T, srv *turntest.Server, key turn.KeyWithSecret, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	slots := make(chan struct{}, 4)
	for range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			_, err := srv.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// An allocation stops relaying once its credential may no longer allocate: revoked, its key
// deleted, expired, or evicted from the fake's table by newer credentials.
func TestRelayStopsAllocationsOfDeadCredentials(t *testing.T) {
	const kept = 100 // credentials the fake keeps, so that 100 newer mints evict one
	var logs syncbuf.Buffer
	clock := &fakeClock{now: time.Now()}
	srv, relay := attach(t, []turntest.Option{turntest.WithClock(clock.Now), turntest.WithMaxCredentials(kept)},
		turnrelay.WithClock(clock.Now), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()
	for _, mode := range []string{"credential revoked", "the credential's key was deleted", "credential expired", "unknown or evicted credential"} {
		m := mint(t, srv, time.Hour)
		a, err := allocate(t, relay, "udp", m.username, m.password)
		if err != nil {
			t.Fatal(err)
		}
		// A peer that answers "before" and counts every "after" it gets.
		peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var after atomic.Int64
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := peer.ReadFrom(buf)
				if err != nil {
					return
				}
				if string(buf[:n]) == "after" {
					after.Add(1)
				} else {
					peer.WriteTo(buf[:n], from)
				}
			}
		}()
		// The permission for the peer is made while the credential lives.
		got := make([]byte, 100)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no echo before", mode)
			}
			a.relay.WriteTo([]byte("before"), peer.LocalAddr())
			a.relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := a.relay.ReadFrom(got); err == nil && string(got[:n]) == "before" {
				break
			}
		}
		switch mode {
		case "credential revoked":
			err = srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: m.key.ID, KeySecret: m.key.Secret, Username: m.username})
		case "the credential's key was deleted":
			_, err = srv.Client().DeleteKey(ctx, turn.KeyParams{KeyID: m.key.ID})
		case "credential expired":
			clock.Add(time.Hour)
		case "unknown or evicted credential":
			mintMany(t, srv, m.key, kept)
			if srv.Revoked(m.username) || srv.RelayedBytes(m.username) != 0 {
				t.Fatal("the credential was not evicted")
			}
			// Revoking it answers 404, as for a credential never minted: the fake no longer knows it.
			err = srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: m.key.ID, KeySecret: m.key.Secret, Username: m.username})
			if !errors.Is(err, turn.ErrNotFound) {
				t.Fatalf("revoking an evicted credential: %v, want 404", err)
			}
			err = nil
		}
		if err != nil {
			t.Fatal(err)
		}
		// Send to the permitted peer until the relay logs that it closed the allocation; the
		// peer must get none of it.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "allocation closed: "+mode); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the relay did not close the allocation:\n%s", mode, logs.String())
			}
			a.relay.WriteTo([]byte("after"), peer.LocalAddr())
		}
		peer.Close()
		if n := after.Load(); n != 0 {
			t.Errorf("%s: the peer got %d packets after the credential died", mode, n)
		}
	}
}

func TestRelayLogsBoundedUsernames(t *testing.T) {
	var logs syncbuf.Buffer
	clock := &fakeClock{now: time.Now()}
	_, relay := attach(t, []turntest.Option{turntest.WithClock(clock.Now)}, turnrelay.WithClock(clock.Now), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	long := strings.Repeat("u", 400)
	for range 20 {
		_, err := allocate(t, relay, "udp", long, "password")
		wantUnauthorized(t, err)
	}
	out := logs.String()
	if strings.Contains(out, strings.Repeat("u", 65)) || !strings.Contains(out, strings.Repeat("u", 64)+"…") {
		t.Errorf("username not cut to 64 bytes in the log:\n%.500s", out)
	}
	// 20 refusals of one reason in a minute: the first 10 logged.
	if n := strings.Count(out, "unknown or evicted credential"); n != 10 {
		t.Errorf("%d refusals logged, want 10:\n%s", n, out)
	}
	// A minute on, the next refusal is logged, after the count of those that were not.
	clock.Add(time.Minute)
	_, err := allocate(t, relay, "udp", long, "password")
	wantUnauthorized(t, err)
	out = logs.String()
	if !strings.Contains(out, `refusals not logged" reason="unknown or evicted credential" count=10`) || strings.Count(out, "unknown or evicted credential") != 12 {
		t.Errorf("no count of the refusals not logged, or no new refusal logged:\n%s", out)
	}
}

// A relay off loopback refuses internal peers: the test listens on every interface and advertises
// 127.0.0.1, so that its clients stay on loopback while the relay applies the policy of a relay
// reachable from the network. Refused permissions are STUN errors: no packet leaves the host.
func TestRelayOffLoopbackRefusesInternalPeers(t *testing.T) {
	var logs syncbuf.Buffer
	srv, relay := attach(t, nil, turnrelay.WithAddr("0.0.0.0:0"), turnrelay.WithAdvertisedIP("127.0.0.1"),
		turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for _, u := range relay.URLs() {
		if !strings.Contains(u, ":127.0.0.1:") {
			t.Errorf("URL %s does not carry the advertised address", u)
		}
	}
	m := mint(t, srv, time.Hour)
	a, err := allocate(t, relay, "udp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	b, err := allocate(t, relay, "tcp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range []string{"127.0.0.2", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255"} {
		err := a.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP(peer), Port: 9})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("permission for %s: %v, want 403 Forbidden", peer, err)
		}
	}
	if !strings.Contains(logs.String(), "peer on a loopback, private, link-local, multicast or unspecified address") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
	// A public address is permitted (a permission sends nothing).
	if err := a.client.CreatePermission(&net.UDPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 9}); err != nil {
		t.Errorf("permission for a public address: %v", err)
	}
	// Between two of its own allocations, the relay relays.
	aAddr, bAddr := a.relay.LocalAddr(), b.relay.LocalAddr()
	got := make([]byte, 100)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no packet between two allocations of the relay")
		}
		b.relay.WriteTo([]byte("permit me"), aAddr) // b's permission for a's address
		a.relay.WriteTo([]byte("a to b"), bAddr)
		b.relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, from, err := b.relay.ReadFrom(got); err == nil && string(got[:n]) == "a to b" && from.String() == aAddr.String() {
			break
		}
	}
	// A service on the relay's own address, at a port that is no allocation's, gets nothing.
	service, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	var reached atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := service.ReadFrom(buf); err != nil {
				return
			}
			reached.Add(1)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "peer at the relay's own address, not at one of its relayed addresses"); {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not refuse a packet to a service on its own address:\n%s", logs.String())
		}
		a.relay.WriteTo([]byte("leak"), service.LocalAddr())
	}
	// What the service sends to a relayed address is dropped too.
	service.WriteTo([]byte("inbound"), aAddr)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "packet from the relay's own address, not from one of its relayed addresses"); {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not drop a packet from a service on its own address:\n%s", logs.String())
		}
		service.WriteTo([]byte("inbound"), aAddr)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("a service on the relay's own address got %d packets", n)
	}
}

func TestRelayOnEveryInterfaceNeedsAnAdvertisedIP(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ addr, advertised, want string }{
		{"0.0.0.0:0", "", "WithAdvertisedIP"},
		{"[::]:0", "", "WithAdvertisedIP"},
		{"0.0.0.0:0", "0.0.0.0", "no address a client can dial"},
		{"0.0.0.0:0", "::1", "use an IPv4 address"},
		{"127.0.0.1:0", "relay.example", "not an IP address"},
	} {
		relay, err := turnrelay.Attach(srv, turnrelay.WithAddr(tc.addr), turnrelay.WithAdvertisedIP(tc.advertised))
		if err == nil {
			relay.Close()
			t.Errorf("%s advertised %q: started, URLs %v; want an error", tc.addr, tc.advertised, relay.URLs())
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s advertised %q: %v, want it to say %q", tc.addr, tc.advertised, err, tc.want)
		}
	}
	if _, err := turnrelay.Attach(nil); err == nil || !strings.Contains(err.Error(), "needs a fake") {
		t.Errorf("Attach(nil) = %v, want an error asking for a fake", err)
	}
	// A relay that did not start leaves the fake's answers as they were.
	if m := mint(t, srv, time.Hour); !strings.Contains(strings.Join(m.urls, " "), "turn.cloudflare.com") {
		t.Errorf("after relays that did not start, the fake answers %v, want Cloudflare's URLs", m.urls)
	}
}

// setter is a stun.Setter from a func.
type setter func(*stun.Message) error

func (f setter) AddTo(m *stun.Message) error { return f(m) }

// channelBind asks the relay, through a's pion client, to bind channel to peer, authenticating as
// the client does (a first request for the nonce, then the request with message integrity).
func channelBind(a *allocation, username, password string, channel uint16, peer *net.UDPAddr) error {
	attrs := []stun.Setter{
		stun.TransactionID, stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
		&stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(channel >> 8), byte(channel), 0, 0}},
		setter(func(m *stun.Message) error {
			return (&stun.XORMappedAddress{IP: peer.IP, Port: peer.Port}).AddToAs(m, stun.AttrXORPeerAddress)
		}),
	}
	msg, err := stun.Build(attrs...)
	if err != nil {
		return err
	}
	res, err := a.client.PerformTransaction(msg, a.client.TURNServerAddr(), false)
	if err != nil {
		return err
	}
	var nonce stun.Nonce
	var realm stun.Realm
	if err := nonce.GetFrom(res.Msg); err != nil {
		return err
	}
	if err := realm.GetFrom(res.Msg); err != nil {
		return err
	}
	msg, err = stun.Build(append(attrs, stun.NewUsername(username), realm, nonce,
		stun.NewLongTermIntegrity(username, realm.String(), password), stun.Fingerprint)...)
	if err != nil {
		return err
	}
	res, err = a.client.PerformTransaction(msg, a.client.TURNServerAddr(), false)
	if err != nil {
		return err
	}
	if res.Msg.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		code.GetFrom(res.Msg)
		return fmt.Errorf("channel bind refused: %d %s", code.Code, code.Reason)
	}
	return nil
}

// Channel bindings are bounded per allocation, over every transport: 64 bind, to 64 ports of one
// peer, the next is refused, and the ones held can still be refreshed.
func TestRelayLimitsChannelBindings(t *testing.T) {
	var logs syncbuf.Buffer
	srv, relay := attach(t, nil, turnrelay.WithTLS(), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	m := mint(t, srv, time.Hour)
	for _, network := range []string{"udp", "tcp", "tls"} {
		a, err := allocate(t, relay, network, m.username, m.password)
		if err != nil {
			t.Fatal(err)
		}
		peer := func(i int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 20000 + i} }
		for i := range turnrelay.MaxChannelsPerAllocation {
			if err := channelBind(a, m.username, m.password, uint16(0x4000+i), peer(i)); err != nil {
				t.Fatalf("%s: channel %d: %v", network, i, err)
			}
		}
		n := turnrelay.MaxChannelsPerAllocation
		if err := channelBind(a, m.username, m.password, uint16(0x4000+n), peer(n)); err == nil || !strings.Contains(err.Error(), "channel bind refused") {
			t.Errorf("%s: channel %d over the limit: %v, want it refused", network, n+1, err)
		}
		if err := channelBind(a, m.username, m.password, 0x4003, peer(3)); err != nil {
			t.Errorf("%s: refreshing a bound channel: %v", network, err)
		}
	}
	if !strings.Contains(logs.String(), "64 channel bindings of one allocation") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
}
