package turnrelay

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	pionturn "github.com/pion/turn/v5"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Limits of the relay.
const (
	relayRealm          = "turntest"
	maxAllocations      = 256 // allocations at once, all users together
	maxStreamConns      = 256 // TCP and TLS connections at once; more are closed on arrival
	allocationLifetime  = 10 * time.Minute
	listenAttempts      = 8 // tries to find a port free for both UDP and TCP
	certificateLifetime = 24 * time.Hour
)

// Fake is what the relay uses of the fake it serves: *turntest.Fake, and so *turntest.Server,
// satisfies it. The relay authenticates a client with the credential LookupCredential hands it
// while that credential is live, stops its allocations once it is not, reports the bytes it
// carries with ReportRelayed, and points the fake's ICE answers at itself with SetICEURLs.
//
// It is an interface, not *turntest.Fake, so that the seam is written down in one place and the
// compiler holds the relay to it: the relay can reach nothing else of the fake.
type Fake interface {
	LookupCredential(username string) turntest.Credential
	ReportRelayed(turntest.RelayedTraffic)
	SetICEURLs(urls ...string) error
}

var _ Fake = (*turntest.Fake)(nil)

// Option configures a Relay.
type Option func(*config)

type config struct {
	addr, advertisedIP string
	tls                bool
	allocsPerCred      int
	lifetime           time.Duration
	logger             *slog.Logger
	now                func() time.Time
}

// WithAddr sets the address the relay listens on, for UDP and TCP alike (default 127.0.0.1:0, a
// free loopback port; UDP and TCP then share one port number when they can).
//
// Off loopback (a LAN address, 0.0.0.0 or [::]) the relay refuses peers on loopback, private,
// link-local, multicast and unspecified addresses, so that a credential holder cannot reach the
// host's or the network's internal services through it; it still relays between its own
// allocations. On every interface (0.0.0.0 or [::]) it needs WithAdvertisedIP: that is no address
// a client can dial.
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithAdvertisedIP sets the IP address the relay's ICE URLs and relayed addresses carry (default:
// the WithAddr host). It is required when the relay listens on every interface, and must be in the
// listen address's family; use the address clients reach this host at, e.g. its LAN address.
func WithAdvertisedIP(ip string) Option { return func(c *config) { c.advertisedIP = ip } }

// WithTLS makes the relay also accept TURN over TLS (turns:) on a port of its own, with a
// certificate made at start for 127.0.0.1, ::1 and localhost; Relay.RootCAs trusts it.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithLogger sets where the relay logs what it refuses (default, and with nil: nowhere), sampled.
// Logs never carry a secret.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock sets the clock the relay's sampled refusal log reads (default, and with nil: time.Now). Give it the
// clock the fake reads (turntest.WithClock), so that one step moves both.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Relay is pion's TURN server attached to a fake, on loopback unless WithAddr says otherwise. It
// authenticates exactly the ICE credentials the fake minted: a live credential of a live key
// allocates; a revoked or expired credential, or one whose key was deleted, is refused with 401.
// It answers STUN binding requests too. It reports its traffic per credential to the fake, bytes
// sent to the client as egress and bytes received from it as ingress (turntest.Fake.Relayed).
//
// Once a credential may no longer allocate (revoked, expired, its key deleted, or evicted from the
// fake's table by 10,000 newer credentials), the allocations it made before stop too: the relay
// closes an allocation's socket at its next packet, so nothing more is relayed (pion cannot end
// an allocation by username: the allocation lingers, relaying nothing, until it expires).
//
// It is bounded: 256 allocations in all, DefaultAllocationsPerCredential per
// credential (WithAllocationsPerCredential), 256 TCP and 256 TLS connections, each closed
// unless it holds an allocation within 10s (one refused is closed at once) and then sends
// something at least once an allocation lifetime (so one credential keeps no more connections
// than allocations), and at most 64 distinct peer IPs and 64 channel bindings per allocation,
// peers in the relay's address family. Peers must be on loopback when the relay is; off
// loopback, no peer may be on a loopback, private, link-local, multicast or unspecified
// address, and the relay's own address is a peer only at its relayed sockets (see
// WithAddr). It relays UDP only. Refusals are logged, sampled (WithLogger).
type Relay struct {
	// The addresses clients dial: the advertised IP (WithAdvertisedIP, else the listen IP) and
	// the port listened on.
	UDPAddr string // STUN and TURN over UDP, e.g. 127.0.0.1:40001
	TCPAddr string // TURN over TCP, on the UDP port when it was free
	TLSAddr string // TURN over TLS; empty unless WithTLS

	certs     *x509.CertPool
	cert      []byte // DER
	server    *pionturn.Server
	guard     *relayGuard
	closeOnce sync.Once
	closeErr  error
}

// Attach starts a relay for f and points f's ICE answers at it (f.SetICEURLs with URLs), so that
// a peer given the fake's answer as is connects through it. Close the relay when done; the fake
// goes on answering its URLs until told otherwise (SetICEURLs with none restores Cloudflare's).
//
//	srv := turntest.NewServer()
//	defer srv.Close()
//	relay, err := turnrelay.Attach(srv, turnrelay.WithTLS())
//	if err != nil { ... }
//	defer relay.Close()
func Attach(f Fake, opts ...Option) (*Relay, error) {
	if f == nil {
		return nil, errors.New("turnrelay: Attach needs a fake, e.g. a *turntest.Server")
	}
	c := config{now: time.Now}
	for _, opt := range opts {
		opt(&c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	r, err := start(f, c)
	if err != nil {
		return nil, err
	}
	if err := f.SetICEURLs(r.URLs()...); err != nil {
		r.Close()
		return nil, fmt.Errorf("turnrelay: point the fake at the relay: %w", err)
	}
	return r, nil
}

// URLs returns the relay's ICE URLs, as the fake's generate-ice-servers answers them once
// attached: stun: and turn: on the UDP address, turn: over TCP, and turns: with WithTLS.
func (r *Relay) URLs() []string {
	urls := []string{"stun:" + r.UDPAddr, "turn:" + r.UDPAddr + "?transport=udp", "turn:" + r.TCPAddr + "?transport=tcp"}
	if r.TLSAddr != "" {
		urls = append(urls, "turns:"+r.TLSAddr+"?transport=tcp")
	}
	return urls
}

// RootCAs returns a pool that trusts the certificate of the TLS listener (nil without WithTLS).
func (r *Relay) RootCAs() *x509.CertPool { return r.certs }

// CertificatePEM returns the TLS listener's self-signed certificate in PEM, for clients in other
// processes to trust (nil without WithTLS).
func (r *Relay) CertificatePEM() []byte {
	if r.cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.cert})
}

// Allocations returns how many allocations the relay holds.
func (r *Relay) Allocations() int { return r.server.AllocationCount() }

// Close stops the relay: its listeners, its allocations, and then the count of the refusals it
// did not log. Closing it again does nothing.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.closeErr = r.server.Close()
		r.guard.log.Flush()
	})
	return r.closeErr
}

// start runs a relay that authenticates against f's credentials.
func start(f Fake, s config) (_ *Relay, err error) {
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("turnrelay: relay address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("turnrelay: relay address %q: the host must be an IP address, e.g. 127.0.0.1", addr)
	}
	public, err := advertisedIP(addr, ip, s.advertisedIP)
	if err != nil {
		return nil, err
	}
	udp, tcp, err := listenBoth(addr)
	if err != nil {
		return nil, err
	}
	closers := []func() error{udp.Close, tcp.Close}
	defer func() {
		if err != nil {
			for _, c := range closers {
				c()
			}
		}
	}()
	r := &Relay{UDPAddr: dialable(public, udp.LocalAddr()), TCPAddr: dialable(public, tcp.Addr())}
	g := newRelayGuard(f, s.logger, s.now, ip, public, s.allocsPerCred)
	r.guard = g
	gen := &countingGenerator{g: g, RelayAddressGeneratorStatic: pionturn.RelayAddressGeneratorStatic{RelayAddress: public, Address: host}}
	listeners := []pionturn.ListenerConfig{{Listener: &notingListener{Listener: g.limitConns(tcp, "tcp"), g: g}, RelayAddressGenerator: gen, PermissionHandler: g.permit}}
	if s.tls {
		cfg, pool, err := selfSignedTLS(public)
		if err != nil {
			return nil, err
		}
		raw, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("turnrelay: relay TLS listener: %w", err)
		}
		closers = append(closers, raw.Close)
		r.TLSAddr, r.certs, r.cert = dialable(public, raw.Addr()), pool, cfg.Certificates[0].Certificate[0]
		// Limited below TLS, whose handshake then has the deadline of a connection without an
		// allocation; noted above it, where the TURN frames are.
		tl := tls.NewListener(g.limitConns(raw, "tls"), cfg)
		listeners = append(listeners, pionturn.ListenerConfig{Listener: &notingListener{Listener: tl, g: g}, RelayAddressGenerator: gen, PermissionHandler: g.permit})
	}
	// The quota handler may run on pion's goroutines before NewServer has returned its result.
	var server atomic.Pointer[pionturn.Server]
	total := func() int {
		if s := server.Load(); s != nil {
			return s.AllocationCount()
		}
		return 0
	}
	r.server, err = pionturn.NewServer(pionturn.ServerConfig{
		Realm:        relayRealm,
		AuthHandler:  g.auth,
		QuotaHandler: func(username, _ string, from net.Addr) bool { return g.quota(total, username, from) },
		EventHandler: pionturn.EventHandler{
			// Called with false only when the credential is live but the request's integrity
			// check failed: the client has the wrong password.
			OnAuth: func(src, _ net.Addr, _, username, _, method string, ok bool) {
				if !ok {
					g.log.Log(slog.LevelInfo, "wrong credential (message integrity)", "username", logName(username), "from", src.String(), "method", method)
				}
			},
			OnAllocationCreated: func(src, _ net.Addr, _, _, _ string, _ net.Addr, _ int) { g.allocated(src, true) },
			OnAllocationDeleted: func(src, _ net.Addr, _, _, _ string) {
				g.allocated(src, false)
				g.allocationDeleted(src)
			},
			OnChannelCreated: func(src, _ net.Addr, _, _, _ string, _, peer net.Addr, channel uint16) {
				g.channelCreated(src, peer, channel)
			},
			OnChannelDeleted: func(src, _ net.Addr, _, _, _ string, _, _ net.Addr, channel uint16) { g.channelDeleted(src, channel) },
		},
		InboundMTU:         relayInboundMTU,
		AllocationLifetime: cmp.Or(s.lifetime, allocationLifetime),
		PacketConnConfigs:  []pionturn.PacketConnConfig{{PacketConn: &notingPacketConn{PacketConn: udp, g: g}, RelayAddressGenerator: gen, PermissionHandler: g.permit}},
		ListenerConfigs:    listeners,
		LoggerFactory:      quietLoggers(),
	})
	if err != nil {
		return nil, fmt.Errorf("turnrelay: start relay: %w", err)
	}
	server.Store(r.server)
	return r, nil
}

// advertisedIP returns the IP the relay's URLs carry: advertised when set, else the listen IP,
// which must then be one a client can dial.
func advertisedIP(addr string, listen net.IP, advertised string) (net.IP, error) {
	if advertised == "" {
		if listen.IsUnspecified() {
			return nil, fmt.Errorf("turnrelay: relay address %s listens on every interface, which no client can dial: "+
				"say which address clients reach this host at with WithAdvertisedIP, e.g. its LAN address", addr)
		}
		return listen, nil
	}
	ip := net.ParseIP(advertised)
	switch {
	case ip == nil:
		return nil, fmt.Errorf("turnrelay: relay advertised IP %q is not an IP address, e.g. 192.168.1.20", advertised)
	case ip.IsUnspecified():
		return nil, fmt.Errorf("turnrelay: relay advertised IP %s is no address a client can dial: use this host's address, e.g. 192.168.1.20", ip)
	case (ip.To4() != nil) != (listen.To4() != nil):
		family := "IPv6"
		if listen.To4() != nil {
			family = "IPv4"
		}
		return nil, fmt.Errorf("turnrelay: relay advertised IP %s is not in the family of the listen address %s: use an %s address", ip, listen, family)
	}
	return ip, nil
}

// dialable is the address clients reach a listener at: the advertised IP and the listener's port.
func dialable(ip net.IP, a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort(ip.String(), port)
}

// listenBoth listens for UDP and TCP on addr, on one port number when addr's port is 0.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("turnrelay: relay: listen on udp %s: %w", addr, err)
		}
		_, udpPort, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, udpPort))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt+1 == listenAttempts {
			return nil, nil, fmt.Errorf("turnrelay: relay: listen on tcp %s: %w", net.JoinHostPort(host, udpPort), err)
		}
	}
}

// auth is the relay's AuthHandler: it hands pion the long-term key of a credential the fake
// minted, while the credential and its key live.
func (g *relayGuard) auth(ra *pionturn.RequestAttributes) (string, []byte, bool) {
	c := g.f.LookupCredential(ra.Username)
	if !c.Live() {
		g.log.Log(slog.LevelInfo, c.State.String(), "username", logName(ra.Username), "from", ra.SrcAddr.String(), "method", ra.Method.String())
		return "", nil, false
	}
	return ra.Username, pionturn.GenerateAuthKey(ra.Username, ra.Realm, c.Password.Reveal()), true
}

// countingGenerator makes relay sockets like RelayAddressGeneratorStatic, UDP only, counting
// each credential's allocations (relayGuard.take) and reporting the bytes they carry.
type countingGenerator struct {
	pionturn.RelayAddressGeneratorStatic
	g *relayGuard
}

var errNoTCPRelay = errors.New("turnrelay: allocations relay UDP only")

// AllocateListener refuses TCP allocations (RFC 6062): the relay, like Cloudflare's, relays UDP.
func (g *countingGenerator) AllocateListener(pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}

// AllocateConn refuses TCP allocations' peer connections.
func (g *countingGenerator) AllocateConn(pionturn.AllocateConnConfig) (net.Conn, error) {
	return nil, errNoTCPRelay
}

func (g *countingGenerator) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	release, err := g.g.take(conf.UserID)
	if err != nil {
		return nil, nil, err
	}
	pc, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(conf)
	if err != nil {
		release()
		return nil, nil, err
	}
	if c := g.g.f.LookupCredential(conf.UserID); !c.Live() {
		pc.Close()
		release()
		return nil, nil, fmt.Errorf("turnrelay: %s", c.State)
	}
	ua, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		pc.Close()
		release()
		return nil, nil, fmt.Errorf("turnrelay: relayed socket on %v, not a UDP address", pc.LocalAddr())
	}
	port := ua.Port
	g.g.relayedPort(port, 1)
	var once sync.Once
	cc := &countingConn{PacketConn: pc, g: g.g, username: conf.UserID, release: func() {
		once.Do(func() {
			g.g.relayedPort(port, -1)
			release()
		})
	}}
	return cc, addr, nil
}

// countingConn is an allocation's relay socket, toward its peers: it reports what it relays, and
// stops relaying once its credential dies (pion cannot end an allocation by username; closing
// its socket ends its relaying).
type countingConn struct {
	net.PacketConn
	g        *relayGuard
	username string
	release  func()
	once     sync.Once
}

// report tells the fake of n bytes relayed for the credential: from a peer to the client
// (egress), or from the client to a peer (ingress).
func (c *countingConn) report(n int, egress bool) {
	if n <= 0 {
		return
	}
	t := turntest.RelayedTraffic{Username: c.username}
	if egress {
		t.Egress = int64(n)
	} else {
		t.Ingress = int64(n)
	}
	c.g.f.ReportRelayed(t)
}

// dead reports whether the credential may no longer use the relay (revoked, expired, evicted
// from the fake's table, or its key deleted), closing the socket if so.
func (c *countingConn) dead() bool {
	cred := c.g.f.LookupCredential(c.username)
	if cred.Live() {
		return false
	}
	c.once.Do(func() {
		c.g.log.Log(slog.LevelInfo, "allocation closed: "+cred.State.String(), "username", logName(c.username))
		c.Close()
	})
	return true
}

// ReadFrom drops what comes from a peer the relay may not talk to (see relayGuard.offLimits).
func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err == nil && c.dead() {
			return 0, nil, net.ErrClosed
		}
		if err == nil && c.g.offLimits(addr) {
			c.g.log.Log(slog.LevelInfo, "packet from the relay's own address, not from one of its relayed addresses", "username", logName(c.username), "peer", addr.String())
			continue
		}
		c.report(n, true) // pion sends it on to the client
		return n, addr, err
	}
}

var errOffLimits = errors.New("turnrelay: the peer is the relay's own address but none of its relayed addresses")

// WriteTo relays what the client sent, reporting it as ingress before writing: the bytes were
// received from the client whatever becomes of them, and the peer's answer may come back through
// ReadFrom before this goroutine runs again; a test that saw the answer must see the count.
func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.dead() {
		return 0, net.ErrClosed
	}
	if c.g.offLimits(addr) {
		c.g.log.Log(slog.LevelInfo, "peer at the relay's own address, not at one of its relayed addresses", "username", logName(c.username), "peer", addr.String())
		return 0, errOffLimits
	}
	c.report(len(p), false)
	return c.PacketConn.WriteTo(p, addr)
}

// Close frees the allocation's place in its credential's count.
func (c *countingConn) Close() error {
	c.release()
	return c.PacketConn.Close()
}

// selfSignedTLS makes a certificate for loopback and the advertised IP, and a pool that trusts it.
func selfSignedTLS(advertised net.IP) (*tls.Config, *x509.CertPool, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("turnrelay: relay certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "turnrelay"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certificateLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if !advertised.IsLoopback() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, advertised)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("turnrelay: relay certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("turnrelay: relay certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool, nil
}

// quietLoggers silences pion: the relay logs refusals itself, through WithLogger.
func quietLoggers() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}
