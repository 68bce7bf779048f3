package turntest

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// open dials the relay's TCP port and reports whether the relay keeps the connection: a kept one
// stays open past a short read deadline, a refused one is closed at once (EOF or reset).
func open(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return c, true
	}
	if err == nil || !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		t.Logf("read on a refused connection: %v", err)
	}
	c.Close()
	return nil, false
}

func TestRelayBoundsStreamConnections(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	conns := make([]net.Conn, 0, maxStreamConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Accepted in the order dialled: the first maxStreamConns take every slot.
	for range maxStreamConns {
		c, err := net.Dial("tcp", srv.Relay.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	over, err := net.Dial("tcp", srv.Relay.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection over the limit: read %v, want it closed by the relay", err)
	}
	over.Close()
	last := conns[len(conns)-1]
	last.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := last.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the last connection within the limit: read %v, want it kept open", err)
	}
	// Closing one frees its slot once the relay has seen it go.
	conns[0].Close()
	conns = conns[1:]
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, kept := open(t, srv.Relay.TCPAddr); kept {
			conns = append(conns, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot came free after a connection closed")
		}
	}
}

// closedByRelay reads c until the relay closes it (EOF or reset), failing after 10s.
func closedByRelay(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent connection: read %v, want it closed by the relay", err)
	}
}

func TestRelayClosesSilentStreamConnections(t *testing.T) {
	t.Cleanup(SetStreamAuthTimeout(300 * time.Millisecond))
	srv := NewServer(WithRelayTLS())
	defer srv.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Every TCP slot and every TLS slot held by a client that sends nothing, the TLS ones
	// without even a handshake.
	for _, addr := range []string{srv.Relay.TCPAddr, srv.Relay.TLSAddr} {
		for range maxStreamConns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	for _, c := range conns {
		closedByRelay(t, c)
	}
	// Their slots are free again: a new connection is kept.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, kept := open(t, srv.Relay.TCPAddr); kept {
			conns = append(conns, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot came free after the silent connections were closed")
		}
	}
}
