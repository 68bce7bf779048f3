package turnrelay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cfturn/cfturn/internal/logsample"
)

// Bounds the relay keeps per connection, credential and allocation.
const (
	// DefaultAllocationsPerCredential is how many allocations one ICE credential may hold at once
	// unless WithAllocationsPerCredential says otherwise.
	DefaultAllocationsPerCredential = 16
	maxPeersPerAllocation           = 64 // distinct peer IPs one allocation may be permitted to

	streamWriteTimeout = 10 * time.Second // a TCP/TLS client that does not read is dropped
	refusalLogBurst    = 10               // refusals logged per reason and interval
	refusalLogInterval = time.Minute
	maxLoggedUsername  = 64 // bytes of an attacker-chosen username that reach the log
)

// streamAuthTimeout is a TCP/TLS connection's time to make an allocation, from its arrival or
// from the end of its allocation (a variable for tests).
var streamAuthTimeout = 10 * time.Second

// WithAllocationsPerCredential sets how many allocations one ICE credential may hold on the relay
// at once (DefaultAllocationsPerCredential, also when n <= 0); more are refused with 486
// Allocation Quota Reached. The relay holds 256 allocations in all.
func WithAllocationsPerCredential(n int) Option {
	return func(c *config) { c.allocsPerCred = n }
}

// relayGuard holds the relay's bounds that need state: allocations per credential, peers per
// allocation, stream connections waiting to authenticate, and the sampled refusal log.
type relayGuard struct {
	f          Fake
	log        *logsample.Log
	loopback   bool        // the relay listens on loopback: peers must be loopback too
	ipv4       bool        // the relay's address family
	own        []net.IP    // off loopback: the relay's own addresses, peers only at its relayed ports
	relayPorts map[int]int // port → relayed sockets on it, for peers at the relay's own addresses
	perCred    int
	mu         sync.Mutex
	allocs     map[string]int                 // username → allocations held
	peers      map[string]map[string]struct{} // client transport address → peer IPs permitted
	streams    map[string]*limitedConn        // remote address → stream conn
	pending    map[string]pendingRequest      // client transport address → its request pion handles now
	channels   map[string]map[uint16]string   // client transport address → channel → peer
}

// newRelayGuard guards a relay of f listening on listen, whose relayed addresses carry advertised.
func newRelayGuard(f Fake, logger *slog.Logger, now func() time.Time, listen, advertised net.IP, perCred int) *relayGuard {
	if perCred <= 0 {
		perCred = DefaultAllocationsPerCredential
	}
	g := &relayGuard{
		f: f, log: logsample.New(logger, now, logsample.Config{Message: "turnrelay: refused", Unlogged: "turnrelay: refusals not logged", KindKey: "reason", Burst: refusalLogBurst, Interval: refusalLogInterval}), loopback: listen.IsLoopback(), ipv4: advertised.To4() != nil, perCred: perCred,
		allocs: make(map[string]int), peers: make(map[string]map[string]struct{}), streams: make(map[string]*limitedConn),
		relayPorts: make(map[int]int), pending: make(map[string]pendingRequest), channels: make(map[string]map[uint16]string),
	}
	if !g.loopback {
		g.own = []net.IP{advertised}
		if !listen.IsUnspecified() && !listen.Equal(advertised) {
			g.own = append(g.own, listen)
		}
	}
	return g
}

// internalPrefixes are ranges that netip's predicates do not name and that lead to no public host:
// "this network", shared address space (carrier NAT), the limited broadcast, NAT64 (which reaches
// IPv4, private ranges included), 6to4 (which embeds an IPv4 address) and deprecated site-local.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

// internalPeer reports whether ip is an address a relay off loopback must not send to: loopback,
// unspecified, private, link-local, multicast, or one of internalPrefixes.
func internalPeer(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return true
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ownIP reports whether ip is one of the relay's own addresses, off loopback.
func (g *relayGuard) ownIP(ip net.IP) bool {
	for _, o := range g.own {
		if o.Equal(ip) {
			return true
		}
	}
	return false
}

// relayedPort records (add 1) or forgets (add -1) a relayed socket's port.
func (g *relayGuard) relayedPort(port, add int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.relayPorts[port] += add; g.relayPorts[port] <= 0 {
		delete(g.relayPorts, port)
	}
}

// offLimits reports whether a relayed socket must not exchange packets with addr: off loopback,
// the relay's own addresses are peers only at the ports of its relayed sockets (relaying between
// two allocations), not at the host's other services. permit has refused every other internal address.
func (g *relayGuard) offLimits(addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || !g.ownIP(ua.IP) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.relayPorts[ua.Port] == 0
}

// quota is the relay's QuotaHandler: it answers 486 before pion allocates anything.
func (g *relayGuard) quota(total func() int, username string, from net.Addr) bool {
	if n := total(); n >= maxAllocations {
		g.log.Log(slog.LevelWarn, fmt.Sprintf("%d allocations, the relay's limit", maxAllocations), "username", logName(username), "from", from.String())
		g.refusedAllocation(from)
		return false
	}
	g.mu.Lock()
	n := g.allocs[username]
	g.mu.Unlock()
	if n >= g.perCred {
		g.log.Log(slog.LevelWarn, fmt.Sprintf("%d allocations of one credential, the relay's limit", g.perCred), "username", logName(username), "from", from.String())
		g.refusedAllocation(from)
		return false
	}
	return true
}

var errCredentialQuota = errors.New("turnrelay: the credential holds as many allocations as the relay allows")

// take counts an allocation of username, the hard limit behind quota (two requests of one
// credential may pass quota at once); the returned func gives it back.
func (g *relayGuard) take(username string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.allocs[username] >= g.perCred {
		g.log.Log(slog.LevelWarn, fmt.Sprintf("%d allocations of one credential, the relay's limit", g.perCred), "username", logName(username))
		return nil, errCredentialQuota
	}
	g.allocs[username]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.allocs[username]--; g.allocs[username] <= 0 {
				delete(g.allocs, username)
			}
		})
	}, nil
}

func addrKey(a net.Addr) string { return a.Network() + " " + a.String() }

// permit is the relay's PermissionHandler: peers in the relay's address family only, loopback
// only when the relay is on loopback, no internal address but its own when it is not, at most
// maxPeersPerAllocation distinct peer IPs and maxChannelsPerAllocation channel bindings for a
// client's allocation (pion asks only once the allocation exists).
func (g *relayGuard) permit(client net.Addr, peer net.IP) bool {
	var why string
	switch {
	case (peer.To4() != nil) != g.ipv4:
		why = "peer not in the relay's address family"
	case g.loopback && !peer.IsLoopback():
		why = "peer not on loopback, like the relay"
	case !g.loopback && internalPeer(peer) && !g.ownIP(peer):
		why = "peer on a loopback, private, link-local, multicast or unspecified address, and the relay is not on loopback"
	}
	if why == "" {
		g.mu.Lock()
		key := addrKey(client)
		set := g.peers[key]
		why = g.channelRefusalLocked(key)
		if _, ok := set[peer.String()]; !ok && why == "" {
			if len(set) >= maxPeersPerAllocation {
				why = fmt.Sprintf("%d peers of one allocation, the relay's limit", maxPeersPerAllocation)
			} else {
				if set == nil {
					set = make(map[string]struct{})
					g.peers[key] = set
				}
				set[peer.String()] = struct{}{}
			}
		}
		g.mu.Unlock()
	}
	if why != "" {
		g.log.Log(slog.LevelInfo, why, "from", client.String(), "peer", peer.String())
		return false
	}
	return true
}

// allocationDeleted forgets the peers and channels of a client's allocation.
func (g *relayGuard) allocationDeleted(client net.Addr) {
	g.mu.Lock()
	delete(g.peers, addrKey(client))
	delete(g.channels, addrKey(client))
	g.mu.Unlock()
}

// stream returns the stream connection from addr, or nil when addr is not one (UDP).
func (g *relayGuard) stream(from net.Addr) *limitedConn {
	if _, ok := from.(*net.TCPAddr); !ok {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.streams[from.String()]
}

// allocated marks the stream connection from addr, if it is one, as holding an allocation (or, with
// false, as no longer holding one), which sets the deadline it must next send something by.
func (g *relayGuard) allocated(from net.Addr, holds bool) {
	if c := g.stream(from); c != nil {
		c.setAllocated(holds)
	}
}

// refusedAllocation closes the stream connection from addr, if it is one, once its refusal is
// written: a connection holds a slot only while it holds an allocation.
func (g *relayGuard) refusedAllocation(from net.Addr) {
	if c := g.stream(from); c != nil {
		c.closeAfterWrite.Store(true)
	}
}

// limitConns bounds the connections l hands out at once to maxStreamConns, closing (and logging)
// any beyond, so a client that opens connections without end cannot exhaust the process. A
// connection must make an allocation within streamAuthTimeout of its arrival, and then send
// something at least once an allocation lifetime; otherwise it is closed and frees its slot. One
// whose allocation is refused is closed once the refusal is written, and one whose allocation ends
// has streamAuthTimeout to make another. A connection holds at most one allocation, so one
// credential holds at most as many connections open past streamAuthTimeout as it may hold
// allocations (WithAllocationsPerCredential).
// l is the raw TCP listener: a TLS listener goes on top, so pion sees a *tls.Conn and bounds
// the handshake itself.
func (g *relayGuard) limitConns(l net.Listener, name string) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, maxStreamConns), g: g, name: name, allocateWithin: streamAuthTimeout}
}

type limitListener struct {
	net.Listener
	slots          chan struct{}
	g              *relayGuard
	name           string
	allocateWithin time.Duration // streamAuthTimeout when the relay started
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			lc := &limitedConn{Conn: c, allocateWithin: l.allocateWithin}
			lc.setAllocated(false)
			key := c.RemoteAddr().String()
			l.g.mu.Lock()
			l.g.streams[key] = lc
			l.g.mu.Unlock()
			lc.release = func() {
				l.g.mu.Lock()
				if l.g.streams[key] == lc {
					delete(l.g.streams, key)
				}
				l.g.mu.Unlock()
				<-l.slots
			}
			return lc, nil
		default:
			l.g.log.Log(slog.LevelWarn, fmt.Sprintf("%d %s connections open, the relay's limit", maxStreamConns, l.name), "from", c.RemoteAddr().String())
			c.Close()
		}
	}
}

// limitedConn is a stream connection holding one of its listener's slots until closed.
type limitedConn struct {
	net.Conn
	allocateWithin  time.Duration
	allocateBy      atomic.Int64 // Unix nanoseconds, wall clock (deadlines are the kernel's); 0 while it holds an allocation
	closeAfterWrite atomic.Bool
	once            sync.Once
	release         func()
}

// setAllocated records whether the connection holds an allocation; when it does not, it has
// allocateWithin from now to make one.
func (c *limitedConn) setAllocated(holds bool) {
	if holds {
		c.allocateBy.Store(0)
	} else {
		c.allocateBy.Store(time.Now().Add(c.allocateWithin).UnixNano())
	}
}

// Read reads before the connection's deadline: the time it has to make an allocation while it
// holds none, else an allocation lifetime from now. A connection past its deadline is closed
// here: pion does not close one whose TLS handshake failed.
func (c *limitedConn) Read(p []byte) (int, error) {
	deadline := time.Now().Add(allocationLifetime)
	if by := c.allocateBy.Load(); by != 0 {
		deadline = time.Unix(0, by)
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.Close()
	}
	return n, err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil || c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// logName is a username as the relay logs it: attacker-chosen, so cut to maxLoggedUsername bytes.
func logName(u string) string {
	if len(u) <= maxLoggedUsername {
		return u
	}
	return strings.ToValidUTF8(u[:maxLoggedUsername], "") + "…"
}
