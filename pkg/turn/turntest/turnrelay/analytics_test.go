package turnrelay_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/cfturn/cfturn/internal/gqlcontract"
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

	// The client reaches the relay over TCP, so nothing it sends is lost before the relay counts it.
	conn, err := net.Dial("tcp", relay.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: relay.TCPAddr, TURNServerAddr: relay.TCPAddr,
		Username: user, Password: pass, Conn: pionturn.NewSTUNConn(conn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); conn.Close() })
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relayed.Close() })
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })

	// The peer answers each datagram with one three times as long; one exchange at a time.
	const rounds, size = 10, 200
	var sent, received int
	buf := make([]byte, 4096)
	for i := range rounds {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := relayed.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sent += len(msg)
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := peer.ReadFrom(buf)
		if err != nil || n != size {
			t.Fatalf("round %d: the peer got %d bytes, %v", i, n, err)
		}
		if _, err := peer.WriteTo(bytes.Repeat(buf[:n], 3), from); err != nil {
			t.Fatal(err)
		}
		relayed.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err = relayed.ReadFrom(buf)
		if err != nil || n != 3*size {
			t.Fatalf("round %d: the client got %d bytes back, %v", i, n, err)
		}
		received += n
	}

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
