package turncheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

const (
	resendEvery = 250 * time.Millisecond // a relayed ping lost on UDP is sent again this often
	closeWait   = time.Second            // time given to deallocate politely before dropping the connection
)

// probe checks one URL.
type probe struct {
	url              iceURL
	username, secret string
	tls              *tls.Config
}

// session is a pion client on one connection to the server.
type session struct {
	conn    net.PacketConn
	server  net.Addr
	client  *pionturn.Client
	refused atomic.Bool // the server's host answered "port unreachable"
	stop    func() bool
}

func (s *session) close() {
	s.stop()
	s.client.Close()
	s.conn.Close()
}

// allocation is a session with a relayed UDP socket.
type allocation struct {
	*session
	relay net.PacketConn
}

func (a *allocation) close() {
	done := make(chan struct{})
	go func() {
		a.relay.Close() // deallocates: one more transaction with the server
		close(done)
	}()
	t := time.NewTimer(closeWait)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
	}
	a.session.close()
}

// dial connects to the URL's server over its transport and starts a pion client on the connection.
// The session closes itself when ctx ends, which ends every transaction in flight. It dials IPv4
// for an IPv4 address or a host name, so the relay asked for is IPv4 too, as browsers ask by
// default; an IPv6 address is dialled over IPv6, and pion then asks for an IPv6 relay
// (REQUESTED-ADDRESS-FAMILY, RFC 6156), as a client with only IPv6 would.
func (p *probe) dial(ctx context.Context) (*session, error) {
	var d net.Dialer
	s := &session{}
	family := "4"
	if p.url.ipv6 {
		family = "6"
	}
	switch p.url.transport {
	case "udp":
		c, err := d.DialContext(ctx, "udp"+family, p.url.addr())
		if err != nil {
			return nil, err
		}
		s.conn, s.server = &connectedUDP{Conn: c, s: s}, c.RemoteAddr()
	case "tcp":
		c, err := d.DialContext(ctx, "tcp"+family, p.url.addr())
		if err != nil {
			return nil, err
		}
		s.conn, s.server = pionturn.NewSTUNConn(c), c.RemoteAddr()
	case "tls":
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.tls != nil {
			cfg = p.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = p.url.host
		}
		c, err := (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp"+family, p.url.addr())
		if err != nil {
			return nil, err
		}
		s.conn, s.server = pionturn.NewSTUNConn(c), c.RemoteAddr()
	}
	// Over TCP and TLS the pion client reads the server's address as UDP; it is only a label there,
	// as STUNConn writes to its one connection.
	server := s.server
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       p.username,
		Password:       p.secret,
		Conn:           s.conn,
		LoggerFactory:  quietLoggers(),
		Software:       "cfturn check",
	})
	if err != nil {
		s.conn.Close()
		return nil, err
	}
	s.client = client
	s.stop = context.AfterFunc(ctx, func() { client.Close(); s.conn.Close() })
	if err := client.Listen(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// stun sends a binding request and records the mapped address and the round trip.
func (p *probe) stun(ctx context.Context, res *Result) {
	s, err := p.dial(ctx)
	if err != nil {
		res.Status, res.Detail = classify(ctx, err, nil)
		return
	}
	defer s.close()
	msg, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		res.Status, res.Detail = StatusFailed, err.Error()
		return
	}
	start := time.Now()
	tr, err := s.client.PerformTransactionWithContext(msg, s.server, false, ctx)
	if err != nil {
		res.Status, res.Detail = classify(ctx, err, s)
		return
	}
	res.RTT = time.Since(start)
	if tr.Msg.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(tr.Msg); err != nil {
			res.Status, res.Detail = StatusFailed, fmt.Sprintf("binding answered with a %s, without an error code", tr.Msg.Type.Class)
			return
		}
		res.Status, res.Detail = StatusFailed, fmt.Sprintf("STUN error %d %.128s", code.Code, code.Reason)
		return
	}
	var mapped stun.XORMappedAddress
	if err := mapped.GetFrom(tr.Msg); err != nil {
		res.Status, res.Detail = StatusFailed, "binding response without a mapped address: "+err.Error()
		return
	}
	res.Status, res.MappedAddress = StatusOK, mapped.String()
}

// turn makes two allocations on the server and sends a packet from one relay to the other and
// back: the path media takes between two peers that both need TURN.
func (p *probe) turn(ctx context.Context, res *Result) {
	a, err := p.allocate(ctx)
	if err != nil {
		res.Status, res.Detail = classify(ctx, err, nil)
		return
	}
	defer a.close()
	res.RelayedAddress = a.relay.LocalAddr().String()
	b, err := p.allocate(ctx)
	if err != nil {
		res.Status, res.Detail = classify(ctx, err, nil)
		res.Detail = "second allocation: " + res.Detail
		return
	}
	defer b.close()
	rtt, err := roundTrip(ctx, a, b)
	if err != nil {
		res.Status, res.Detail = classify(ctx, err, nil)
		res.Detail = "allocated, but no packet came back through the relay: " + res.Detail
		return
	}
	res.Status, res.RTT = StatusOK, rtt
}

func (p *probe) allocate(ctx context.Context) (*allocation, error) {
	s, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	relay, err := s.client.AllocateWithContext(ctx)
	if err != nil {
		if s.refused.Load() {
			err = fmt.Errorf("%w (%v)", syscall.ECONNREFUSED, err)
		}
		s.close()
		return nil, err
	}
	return &allocation{session: s, relay: relay}, nil
}

// roundTrip sends a random ping from a's relay to b's, which echoes it, and times its return.
func roundTrip(ctx context.Context, a, b *allocation) (time.Duration, error) {
	if err := a.client.CreatePermission(b.relay.LocalAddr()); err != nil {
		return 0, fmt.Errorf("create permission: %w", err)
	}
	if err := b.client.CreatePermission(a.relay.LocalAddr()); err != nil {
		return 0, fmt.Errorf("create permission: %w", err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := b.relay.ReadFrom(buf)
			if err != nil {
				return
			}
			b.relay.WriteTo(buf[:n], from)
		}
	}()
	ping := make([]byte, 16)
	rand.Read(ping)
	buf := make([]byte, 1500)
	deadline, _ := ctx.Deadline()
	for {
		start := time.Now()
		if _, err := a.relay.WriteTo(ping, b.relay.LocalAddr()); err != nil {
			return 0, err
		}
		resend := start.Add(resendEvery)
		if !deadline.IsZero() && deadline.Before(resend) {
			resend = deadline
		}
		a.relay.SetReadDeadline(resend)
		for {
			n, _, err := a.relay.ReadFrom(buf)
			if err == nil && bytes.Equal(buf[:n], ping) {
				return time.Since(start), nil
			}
			if err == nil {
				continue // a stray packet
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return 0, err
				}
			}
			break
		}
	}
}

// classify turns a probe's error into a Status and a detail free of secrets (pion's errors never
// carry the credential).
func classify(ctx context.Context, err error, s *session) (Status, string) {
	var te *stun.TurnError
	var ne net.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	switch {
	case errors.As(err, &te) && te.ErrorCodeAttr.Code == stun.CodeUnauthorized:
		return StatusAuthFailed, "401 Unauthorized: the server refused the username and credential (revoked, expired or wrong)"
	case errors.As(err, &te):
		return StatusFailed, fmt.Sprintf("TURN error %d %s", te.ErrorCodeAttr.Code, te.ErrorCodeAttr.Reason)
	case errors.Is(err, syscall.ECONNREFUSED) || s != nil && s.refused.Load():
		return StatusRefused, "connection refused: nothing listens on that port"
	case errors.As(err, &certErr) || errors.As(err, &unknownAuth):
		return StatusFailed, "TLS: " + err.Error()
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return StatusTimeout, "no answer before the deadline"
	}
	return StatusFailed, err.Error()
}

// connectedUDP is a UDP socket connected to the server, as a net.PacketConn for pion. Being
// connected, it learns when the server's host refuses the port (ICMP port unreachable).
type connectedUDP struct {
	net.Conn
	s *session
}

func (c *connectedUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	n, err := c.Read(p)
	if errors.Is(err, syscall.ECONNREFUSED) {
		c.s.refused.Store(true)
		// Nothing will answer: end the transactions in flight now rather than at the deadline.
		if c.s.client != nil {
			c.s.client.Close()
		}
	}
	return n, c.RemoteAddr(), err
}

func (c *connectedUDP) WriteTo(p []byte, _ net.Addr) (int, error) { return c.Write(p) }

// quietLoggers silences pion's own logging: the results say what happened.
func quietLoggers() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}
