package turnrelay_test

import (
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// echoPeer is a local UDP socket that echoes what it gets, counting the packets.
func echoPeer(t *testing.T) (net.PacketConn, *atomic.Int64) {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	var got atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(1)
			peer.WriteTo(buf[:n], from)
		}
	}()
	return peer, &got
}

// TestRelayEndsExpiredAllocationsWithinTheirLifetime: once its credential expires, an allocation
// cannot create a permission for a new peer, relays nothing more, and, idle, ends within the
// allocation lifetime set by WithAllocationLifetime, its refreshes being refused.
func TestRelayEndsExpiredAllocationsWithinTheirLifetime(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	var logs syncbuf.Buffer
	srv, relay := attach(t, []turntest.Option{turntest.WithClock(clock.Now)}, turnrelay.WithClock(clock.Now),
		turnrelay.WithAllocationLifetime(2*time.Second), turnrelay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	m := mint(t, srv, time.Minute)
	a, err := allocate(t, relay, "udp", m.username, m.password)
	if err != nil {
		t.Fatal(err)
	}
	idle := mintFrom(t, srv, m.key, time.Minute)
	if _, err := allocate(t, relay, "udp", idle.username, idle.password); err != nil {
		t.Fatal(err)
	}
	peer, _ := echoPeer(t)
	if got := echo(t, a, []byte("before")); string(got) != "before" {
		t.Fatalf("echo before expiry: %q", got)
	}
	if relay.Allocations() != 2 {
		t.Fatalf("%d allocations, want 2", relay.Allocations())
	}

	clock.Add(time.Minute)
	other, _ := echoPeer(t)
	err = a.client.CreatePermission(other.LocalAddr())
	wantUnauthorized(t, err)

	// The busy allocation stops relaying at its first packet after expiry.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "allocation closed: credential expired"); {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not close the expired allocation:\n%s", logs.String())
		}
		a.relay.WriteTo([]byte("after"), peer.LocalAddr())
	}
	a.relay.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := a.relay.ReadFrom(make([]byte, 100)); err == nil {
		t.Error("an echo came back through the expired allocation")
	}
	// The idle one sends nothing: it ends because the client's refresh (at half the 2 s lifetime)
	// is refused. The relay runs on real time, so this waits, bounded.
	for deadline := time.Now().Add(10 * time.Second); relay.Allocations() != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations 10 s after expiry with a 2 s lifetime, want none", relay.Allocations())
		}
	}
	if n := strings.Count(logs.String(), "allocation closed"); n != 1 {
		t.Errorf("%d allocations closed for a packet, want 1 (the idle one must end by its lifetime):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "credential expired") {
		t.Error("no refused refresh logged")
	}
	for _, p := range []string{m.password, idle.password} {
		if strings.Contains(logs.String(), p) {
			t.Error("a credential reached the log")
		}
	}
}
