package turntest

import (
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
	"github.com/pion/turn/v5"

	"github.com/cfturn/cfturn/gen/calls"
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

// WithoutRelay makes NewServer run no TURN relay: generate-ice-servers then answers the URL set
// of Cloudflare's docs (see WithLegacyICEURLs), which no test can connect to.
func WithoutRelay() Option { return func(s *settings) { s.noRelay = true } }

// WithRelayAddr sets the address the relay listens on, for UDP and TCP alike (default
// 127.0.0.1:0, a free loopback port; UDP and TCP then share one port number when they can).
func WithRelayAddr(addr string) Option { return func(s *settings) { s.relayAddr = addr } }

// WithRelayTLS makes the relay also accept TURN over TLS (turns:) on a port of its own, with a
// certificate made at start for 127.0.0.1, ::1 and localhost; Relay.RootCAs trusts it.
func WithRelayTLS() Option { return func(s *settings) { s.relayTLS = true } }

// WithClock sets the clock the fake reads to expire ICE credentials (default time.Now), so a
// test can step past a TTL without sleeping.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithLogger sets where the fake logs the requests it refuses (default: nowhere). Logs never
// carry a secret.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// Relay is the fake's TURN server, pion's, on loopback. It authenticates exactly the ICE
// credentials the fake minted: a live credential of a live key allocates; a revoked or expired
// credential, or one whose key was deleted, is refused with 401. It answers STUN binding
// requests too. Its traffic is counted per credential (Fake.RelayedBytes).
type Relay struct {
	UDPAddr string // STUN and TURN over UDP, e.g. 127.0.0.1:40001
	TCPAddr string // TURN over TCP, on the UDP port when it was free
	TLSAddr string // TURN over TLS; empty unless WithRelayTLS

	certs  *x509.CertPool
	cert   []byte // DER
	server *turn.Server
}

// URLs returns the relay's ICE URLs, as the fake's generate-ice-servers answers them.
func (r *Relay) URLs() []string {
	var urls []string
	for _, s := range r.iceServers() {
		urls = append(urls, s.Urls...)
	}
	return urls
}

// RootCAs returns a pool that trusts the certificate of the TLS listener (nil without WithRelayTLS).
func (r *Relay) RootCAs() *x509.CertPool { return r.certs }

// CertificatePEM returns the TLS listener's self-signed certificate in PEM, for clients in other
// processes to trust (nil without WithRelayTLS).
func (r *Relay) CertificatePEM() []byte {
	if r.cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.cert})
}

// Allocations returns how many allocations the relay holds.
func (r *Relay) Allocations() int { return r.server.AllocationCount() }

func (r *Relay) close() error { return r.server.Close() }

func (r *Relay) iceServers() []calls.IceServer {
	turnURLs := []string{"turn:" + r.UDPAddr + "?transport=udp", "turn:" + r.TCPAddr + "?transport=tcp"}
	if r.TLSAddr != "" {
		turnURLs = append(turnURLs, "turns:"+r.TLSAddr+"?transport=tcp")
	}
	return []calls.IceServer{{Urls: []string{"stun:" + r.UDPAddr}}, {Urls: turnURLs}}
}

// startRelay runs a relay that authenticates against f's credentials.
func startRelay(f *Fake, s settings) (_ *Relay, err error) {
	addr := s.relayAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("turntest: relay address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("turntest: relay address %q: the host must be an IP address, e.g. 127.0.0.1", addr)
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
	r := &Relay{UDPAddr: udp.LocalAddr().String(), TCPAddr: tcp.Addr().String()}
	gen := &countingGenerator{f: f, RelayAddressGeneratorStatic: turn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: host}}
	listeners := []turn.ListenerConfig{{Listener: f.limitConns(tcp, "tcp"), RelayAddressGenerator: gen}}
	if s.relayTLS {
		cfg, pool, err := selfSignedTLS()
		if err != nil {
			return nil, err
		}
		tl, err := tls.Listen("tcp", net.JoinHostPort(host, "0"), cfg)
		if err != nil {
			return nil, fmt.Errorf("turntest: relay TLS listener: %w", err)
		}
		closers = append(closers, tl.Close)
		r.TLSAddr, r.certs, r.cert = tl.Addr().String(), pool, cfg.Certificates[0].Certificate[0]
		listeners = append(listeners, turn.ListenerConfig{Listener: f.limitConns(tl, "tls"), RelayAddressGenerator: gen})
	}
	// The quota handler may run on pion's goroutines before NewServer has returned its result.
	var server atomic.Pointer[turn.Server]
	r.server, err = turn.NewServer(turn.ServerConfig{
		Realm:       relayRealm,
		AuthHandler: f.relayAuth,
		QuotaHandler: func(username, _ string, from net.Addr) bool {
			if s := server.Load(); s == nil || s.AllocationCount() < maxAllocations {
				return true
			}
			f.logger.Warn("turntest relay: refused", "username", username, "from", from.String(), "reason", fmt.Sprintf("%d allocations, the relay's limit", maxAllocations))
			return false
		},
		EventHandler: turn.EventHandler{
			// Called with false only when the credential is live but the request's integrity
			// check failed: the client has the wrong password.
			OnAuth: func(src, _ net.Addr, _, username, _, method string, ok bool) {
				if !ok {
					f.logger.Info("turntest relay: refused", "username", username, "from", src.String(), "method", method, "reason", "wrong credential (message integrity)")
				}
			},
		},
		AllocationLifetime: allocationLifetime,
		PacketConnConfigs:  []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen}},
		ListenerConfigs:    listeners,
		LoggerFactory:      quietLoggers(),
	})
	if err != nil {
		return nil, fmt.Errorf("turntest: start relay: %w", err)
	}
	server.Store(r.server)
	return r, nil
}

// listenBoth listens for UDP and TCP on addr, on one port number when addr's port is 0.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("turntest: relay: listen on udp %s: %w", addr, err)
		}
		_, udpPort, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, udpPort))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt+1 == listenAttempts {
			return nil, nil, fmt.Errorf("turntest: relay: listen on tcp %s: %w", net.JoinHostPort(host, udpPort), err)
		}
	}
}

// limitConns bounds the connections l hands out at once to maxStreamConns, closing (and logging)
// any beyond, so a client that opens connections without end cannot exhaust the process.
func (f *Fake) limitConns(l net.Listener, name string) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, maxStreamConns), f: f, name: name}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
	f     *Fake
	name  string
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.f.logger.Warn("turntest relay: refused", "from", c.RemoteAddr().String(), "reason", fmt.Sprintf("%d %s connections open, the relay's limit", maxStreamConns, l.name))
			c.Close()
		}
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// relayAuth is the relay's AuthHandler: it hands pion the long-term key of a credential the fake
// minted, while the credential and its key live.
func (f *Fake) relayAuth(ra *turn.RequestAttributes) (string, []byte, bool) {
	f.mu.Lock()
	c := f.creds.get(ra.Username)
	var why string
	switch {
	case c == nil:
		why = "unknown or evicted credential"
	case c.revoked:
		why = "credential revoked"
	case !c.expires.After(f.now()):
		why = "credential expired"
	case f.byID[c.keyID] == nil:
		why = "the credential's key was deleted"
	}
	f.mu.Unlock()
	if why != "" {
		f.logger.Info("turntest relay: refused", "username", ra.Username, "from", ra.SrcAddr.String(), "method", ra.Method.String(), "reason", why)
		return "", nil, false
	}
	return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, c.secret), true
}

// RelayedBytes returns how many bytes the relay has carried, both ways, for the credential
// username (0 once it has been evicted from the fake's table).
func (f *Fake) RelayedBytes(username string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.creds.get(username); c != nil {
		return c.relayed.Load()
	}
	return 0
}

// RelayedBytesByIdentifier returns how many bytes the relay has carried, both ways, for every
// credential minted with this customIdentifier, evicted ones included. The fake counts for at
// most as many identifiers as it keeps credentials (10,000); later ones are not counted.
func (f *Fake) RelayedBytesByIdentifier(customIdentifier string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.creds.identifiers[customIdentifier]; n != nil {
		return n.Load()
	}
	return 0
}

// countingGenerator makes relay sockets like RelayAddressGeneratorStatic, counting the bytes of
// UDP allocations for the allocating credential.
type countingGenerator struct {
	turn.RelayAddressGeneratorStatic
	f *Fake
}

func (g *countingGenerator) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(conf)
	if err != nil {
		return nil, nil, err
	}
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	c := g.f.creds.get(conf.UserID)
	if c == nil {
		pc.Close()
		return nil, nil, errors.New("turntest relay: the credential is gone")
	}
	cc := &countingConn{PacketConn: pc, cred: &c.relayed}
	if c.customIdentifier != "" {
		cc.ident = g.f.creds.identifier(c.customIdentifier)
	}
	return cc, addr, nil
}

// countingConn counts what a relay socket sends and receives.
type countingConn struct {
	net.PacketConn
	cred, ident *atomic.Int64
}

func (c *countingConn) count(n int) {
	if n != 0 {
		c.cred.Add(int64(n))
		if c.ident != nil {
			c.ident.Add(int64(n))
		}
	}
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	c.count(n)
	return n, addr, err
}

// WriteTo counts before writing: the peer's answer may come back through ReadFrom before this
// goroutine runs again, and a test that saw the answer must see the count.
func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.count(len(p))
	n, err := c.PacketConn.WriteTo(p, addr)
	c.count(n - len(p))
	return n, err
}

// selfSignedTLS makes a certificate for loopback and a pool that trusts it.
func selfSignedTLS() (*tls.Config, *x509.CertPool, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("turntest: relay certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "turntest relay"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certificateLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("turntest: relay certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("turntest: relay certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool, nil
}

// quietLoggers silences pion: the fake logs refusals itself, through WithLogger.
func quietLoggers() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}
