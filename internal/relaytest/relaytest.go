// Package relaytest relays a known number of bytes through a TURN server for tests, with pion's
// TURN client, so that a test can check what the relay counted (the fake's usage analytics, the
// spend guard) against what really passed.
package relaytest

import (
	"bytes"
	"net"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
)

// Exchange connects to the TURN server at tcpAddr over TCP (so nothing the client sends is lost
// before the relay counts it) with user and pass, allocates a relayed address, and relays rounds
// datagrams of size bytes to a UDP peer on loopback, which answers each with one factor times as
// long, one exchange at a time. It returns the bytes the client sent (the relay's ingress) and
// received (its egress), and fails the test if any datagram is lost or cut.
func Exchange(t testing.TB, tcpAddr, user, pass string, rounds, size, factor int) (sent, received int) {
	t.Helper()
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: tcpAddr, TURNServerAddr: tcpAddr,
		Username: user, Password: pass, Conn: pionturn.NewSTUNConn(conn)})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	defer func() { client.Close(); conn.Close() }()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	buf := make([]byte, max(4096, size*factor+1))
	for i := range rounds {
		if _, err := relayed.WriteTo(bytes.Repeat([]byte{byte('a' + i%26)}, size), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sent += size
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := peer.ReadFrom(buf)
		if err != nil || n != size {
			t.Fatalf("round %d: the peer got %d bytes, %v", i, n, err)
		}
		if _, err := peer.WriteTo(bytes.Repeat(buf[:n], factor), from); err != nil {
			t.Fatal(err)
		}
		relayed.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, _, err = relayed.ReadFrom(buf); err != nil || n != factor*size {
			t.Fatalf("round %d: the client got %d bytes back, %v", i, n, err)
		}
		received += n
	}
	return sent, received
}
