package turnrelay

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// startRelay attaches a relay with opts to a new fake; both close when the test ends.
func startRelay(t *testing.T, opts ...Option) *Relay {
	t.Helper()
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	r, err := Attach(srv, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// testGuard is a guard of a relay on loopback, for tests of its parts.
func testGuard() *relayGuard {
	lo := net.IPv4(127, 0, 0, 1)
	return newRelayGuard(turntest.New(), slog.New(slog.DiscardHandler), time.Now, lo, lo, 0)
}

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
	relay := startRelay(t)
	conns := make([]net.Conn, 0, maxStreamConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Accepted in the order dialled: the first maxStreamConns take every slot.
	for range maxStreamConns {
		c, err := net.Dial("tcp", relay.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	over, err := net.Dial("tcp", relay.TCPAddr)
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
		if c, kept := open(t, relay.TCPAddr); kept {
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
	relay := startRelay(t, WithTLS())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Every TCP slot and every TLS slot held by a client that sends nothing, the TLS ones
	// without even a handshake.
	for _, addr := range []string{relay.TCPAddr, relay.TLSAddr} {
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
		if c, kept := open(t, relay.TCPAddr); kept {
			conns = append(conns, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot came free after the silent connections were closed")
		}
	}
}

// notingConn hands pion one TURN frame per read and notes each before handing it out, however
// the stream cuts them: byte by byte, or several in one write.
func TestNotingConnCutsFrames(t *testing.T) {
	bind := func(channel byte) []byte {
		m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
			&stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, channel, 0, 0}},
			setterFunc(func(m *stun.Message) error {
				return (&stun.XORMappedAddress{IP: net.IPv4(127, 0, 0, 1), Port: 9}).AddToAs(m, stun.AttrXORPeerAddress)
			}))
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	data := []byte{0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0} // ChannelData, padded
	frames := [][]byte{bind(1), data, bind(2)}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, f...)
	}
	for _, chunk := range []int{1, 7, len(stream)} {
		client, server := net.Pipe()
		go func() {
			for b := stream; len(b) > 0; b = b[min(chunk, len(b)):] {
				client.Write(b[:min(chunk, len(b))])
			}
			client.Close()
		}()
		g := testGuard()
		c := &notingConn{Conn: server, g: g, chunk: make([]byte, 2048)}
		for i, want := range frames {
			got := make([]byte, 2048)
			n, err := c.Read(got)
			if err != nil || !bytes.Equal(got[:n], want) {
				t.Fatalf("chunks of %d: frame %d: read %x, %v; want %x", chunk, i, got[:n], err, want)
			}
			g.mu.Lock()
			p := g.pending[addrKey(server.RemoteAddr())]
			g.mu.Unlock()
			if wantBind := i != 1; p.parsed != wantBind || wantBind && p.channel != 0x4000+uint16(i/2+1) {
				t.Errorf("chunks of %d: frame %d: noted %+v", chunk, i, p)
			}
		}
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, io.EOF) {
			t.Errorf("chunks of %d: after the frames: %v, want EOF", chunk, err)
		}
		c.Close()
	}
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }

func TestInternalPeer(t *testing.T) {
	for peer, want := range map[string]bool{
		"127.0.0.1": true, "10.0.0.1": true, "172.31.255.255": true, "192.168.0.1": true, "169.254.169.254": true,
		"0.0.0.0": true, "0.1.2.3": true, "100.64.0.1": true, "224.0.0.251": true, "255.255.255.255": true,
		"::1": true, "::": true, "fd00::1": true, "fe80::1": true, "ff02::1": true, "fec0::1": true,
		"::ffff:10.0.0.1": true, "64:ff9b::a00:1": true, "2002:a00:1::1": true,
		"203.0.113.7": false, "8.8.8.8": false, "172.32.0.1": false, "100.128.0.1": false, "2606:4700::1111": false,
	} {
		if got := internalPeer(net.ParseIP(peer)); got != want {
			t.Errorf("internalPeer(%s) = %v, want %v", peer, got, want)
		}
	}
}

// notingConn passes the stream through unchanged, whatever it holds, cut however it comes.
func FuzzNotingConn(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}, uint8(3))
	f.Add([]byte{0x00, 0x09, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(1))
	f.Add([]byte{0x00, 0x01, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, uint8(5))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(4))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		step := int(chunk%16) + 1
		client, server := net.Pipe()
		go func() {
			for b := stream; len(b) > 0; b = b[min(step, len(b)):] {
				client.Write(b[:min(step, len(b))])
			}
			client.Close()
		}()
		g := testGuard()
		c := &notingConn{Conn: server, g: g, chunk: make([]byte, 64)}
		var got []byte
		buf := make([]byte, relayInboundMTU)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.Close()
		if !bytes.Equal(got, stream) {
			t.Fatalf("stream changed:\n got %x\nwant %x", got, stream)
		}
	})
}
