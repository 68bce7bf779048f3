package turnrelay

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/pion/stun/v4"
)

// maxChannelsPerAllocation bounds the channel bindings of one allocation, as maxPeersPerAllocation
// bounds its peers: without it one allocation could bind all 16,384 channel numbers, each to
// another port of one peer, each with a timer.
const maxChannelsPerAllocation = 64

// pion asks the PermissionHandler about a peer without saying whether the request is a
// CreatePermission or a ChannelBind, nor which channel it binds. So the relay reads each request
// before pion does (it handles one request of a client at a time, in order) and notes what a
// client's request in hand is; permit then knows whether it is a new channel binding, and
// OnChannelCreated/OnChannelDeleted keep the count of each allocation's bindings.

// pendingRequest is what the relay noted about the request of a client that pion handles now.
type pendingRequest struct {
	permission bool   // a CreatePermission: no channel is bound
	parsed     bool   // a ChannelBind whose channel and peer were read
	channel    uint16 // with parsed
	peer       string // with parsed
}

// STUN message types, class request, of the requests that ask for a permission.
const (
	typeCreatePermission = 0x0008
	typeChannelBind      = 0x0009
)

// note records what the frame b from client is, replacing the note of the previous frame of the
// same socket or connection (*last is its key), so that the relay keeps at most one note per
// socket and per connection whatever the sources of the datagrams.
func (g *relayGuard) note(last *string, from net.Addr, b []byte) {
	var typ uint16
	if stun.IsMessage(b) {
		typ = binary.BigEndian.Uint16(b[0:2])
	}
	if *last == "" && typ != typeCreatePermission && typ != typeChannelBind {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if *last != "" {
		delete(g.pending, *last)
		*last = ""
	}
	switch typ {
	case typeCreatePermission:
		*last = addrKey(from)
		g.pending[*last] = pendingRequest{permission: true}
	case typeChannelBind:
		*last = addrKey(from)
		g.pending[*last] = readChannelBind(b)
	}
}

// readChannelBind reads the channel and peer of a ChannelBind request; one it cannot read is
// noted as a ChannelBind all the same, and then counts as a new binding.
func readChannelBind(b []byte) pendingRequest {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return pendingRequest{}
	}
	v, err := m.Get(stun.AttrChannelNumber)
	var peer stun.XORMappedAddress
	if err != nil || len(v) < 2 || peer.GetFromAs(m, stun.AttrXORPeerAddress) != nil {
		return pendingRequest{}
	}
	return pendingRequest{parsed: true, channel: binary.BigEndian.Uint16(v), peer: (&net.UDPAddr{IP: peer.IP, Port: peer.Port}).String()}
}

// channelRefusalLocked is why permit must refuse the peer of client's request in hand, or "": a
// new channel binding of an allocation that holds maxChannelsPerAllocation. A request the relay
// has not noted as a CreatePermission counts as a ChannelBind (refusing too much, never too
// little). Call with g.mu held.
func (g *relayGuard) channelRefusalLocked(key string) string {
	p, ok := g.pending[key]
	if ok && p.permission {
		return ""
	}
	bound := g.channels[key]
	if ok && p.parsed && bound[p.channel] == p.peer && p.peer != "" {
		return "" // a refresh
	}
	if len(bound) >= maxChannelsPerAllocation {
		return fmt.Sprintf("%d channel bindings of one allocation, the relay's limit", maxChannelsPerAllocation)
	}
	return ""
}

// channelCreated and channelDeleted are the relay's OnChannelCreated and OnChannelDeleted.
func (g *relayGuard) channelCreated(client, peer net.Addr, channel uint16) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := addrKey(client)
	if g.channels[key] == nil {
		g.channels[key] = make(map[uint16]string)
	}
	g.channels[key][channel] = peer.String()
}

func (g *relayGuard) channelDeleted(client net.Addr, channel uint16) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := addrKey(client)
	if delete(g.channels[key], channel); len(g.channels[key]) == 0 {
		delete(g.channels, key)
	}
}

// notingPacketConn is the relay's UDP socket, noting each datagram before pion handles it.
type notingPacketConn struct {
	net.PacketConn
	g    *relayGuard
	last string
}

func (c *notingPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.g.note(&c.last, addr, p[:n])
	}
	return n, addr, err
}

// notingListener hands out stream connections that note each frame before pion handles it.
type notingListener struct {
	net.Listener
	g *relayGuard
}

func (l *notingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &notingConn{Conn: c, g: l.g, chunk: make([]byte, 2048)}, nil
}

// notingConn cuts a TCP or TLS stream into TURN frames as pion does and hands pion one frame at a
// time, noting each before handing out its bytes: pion handles a frame before it reads again.
type notingConn struct {
	net.Conn
	g       *relayGuard
	chunk   []byte
	buf     []byte // read from Conn, not yet handed out
	ready   int    // buf[:ready] is noted, to hand out
	readErr error  // the error that ended reading, for when buf is handed out
	last    string
	// After a frame pion cannot take (not TURN, or over its MTU), on which it closes the
	// connection, bytes pass as they come.
	passThrough bool
}

func (c *notingConn) Read(p []byte) (int, error) {
	for c.ready == 0 {
		n := turnFrameLen(c.buf)
		if n < 0 || n > relayInboundMTU {
			c.passThrough = true
		}
		switch {
		case len(c.buf) > 0 && (c.passThrough || c.readErr != nil):
			// pion fails on these bytes and closes the connection.
			c.ready = len(c.buf)
			continue
		case n > 0:
			c.g.note(&c.last, c.RemoteAddr(), c.buf[:n])
			c.ready = n
			continue
		case c.readErr != nil:
			return 0, c.readErr
		}
		n, err := c.Conn.Read(c.chunk)
		c.buf = append(c.buf, c.chunk[:n]...)
		c.readErr = err
	}
	n := copy(p, c.buf[:c.ready])
	c.buf = c.buf[n:]
	c.ready -= n
	return n, nil
}

// Close forgets the connection's note (it may run beside Read, so it leaves c.last alone).
func (c *notingConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.pending, addrKey(c.RemoteAddr()))
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// relayInboundMTU is the largest frame pion's server reads (its default InboundMTU, set explicitly).
const relayInboundMTU = 1600

// turnFrameLen is the length of the STUN message or ChannelData frame (padded to 4 bytes, as on
// TCP) at the start of b, read as pion reads it: 0 when b does not hold all of it yet, -1 when b
// starts with neither.
func turnFrameLen(b []byte) int {
	var n int
	switch {
	case stun.IsMessage(b):
		n = 20 + int(binary.BigEndian.Uint16(b[2:4]))
	case len(b) >= 4 && b[0]&0xc0 == 0x40: // channel numbers 0x4000 to 0x7fff
		n = 4 + (int(binary.BigEndian.Uint16(b[2:4]))+3)&^3
	case len(b) < 20:
		return 0
	default:
		return -1
	}
	if len(b) < n {
		return 0
	}
	return n
}
