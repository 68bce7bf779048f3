package iceserve

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Server.
const (
	DefaultMaxConns        = 10_000
	DefaultIdleTimeout     = 15 * time.Second
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultShutdownTimeout = 30 * time.Second
)

// LoopbackHosts are the Host names a Server on a loopback address answers when AllowedHosts is
// empty.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// Server serves a handler on the open internet with the hardening cfturn serve-ice puts around its
// Handler: a Host guard against DNS rebinding, a cap on open connections, read, write and idle
// timeouts, a header size cap, and a graceful shutdown that Close cuts short. Zero fields take the
// documented defaults. A Server serves once.
type Server struct {
	Handler http.Handler // required

	// AllowedHosts lists the Host names (port aside, case-insensitive) answered; a request for
	// another gets 421, so that a page whose DNS name an attacker points at this address cannot
	// call it from a visitor's browser. When empty, a Server listening on a loopback address
	// answers only LoopbackHosts, and one on another address answers any Host.
	AllowedHosts []string
	// MaxConns bounds the connections open at once (default 10,000): one past that is closed at
	// once, so idle connections cannot exhaust the process's file descriptors.
	MaxConns int
	// MaxConnsPerSource bounds the connections open at once from one source address (an IPv6
	// address's /64), so one client cannot hold every slot; 0 means no such bound. Leave it 0, or
	// above your proxy's connection pool, when a proxy or load balancer is the only source.
	MaxConnsPerSource int
	// RequestTimeout bounds reading one request and, with 5s more, writing its answer (default
	// DefaultRequestTimeout); the header must arrive within min(5s, RequestTimeout).
	RequestTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long (default 15s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header (default 64 KiB).
	MaxHeaderBytes int
	// ShutdownTimeout bounds the graceful shutdown that starts when Serve's context ends
	// (default 30s); requests still in flight then are cut off.
	ShutdownTimeout time.Duration
	// Logger gets the refused Hosts (sampled to one line a second) and net/http's own errors.
	Logger *slog.Logger
	// OnShutdown, when set, is called as the graceful shutdown starts, with the number of
	// requests then in flight, e.g. to tell an operator what the server waits for.
	OnShutdown func(inFlight int64)

	refused  atomic.Int64
	inFlight atomic.Int64
	mu       sync.Mutex
	srv      *http.Server
	closed   bool
}

// Serve serves on l until ctx ends, then shuts down gracefully: it stops accepting, waits for
// the requests in flight up to ShutdownTimeout, and returns nil. It returns early with the
// listener's error, or when Close is called.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.Handler == nil {
		l.Close()
		return errors.New("iceserve: Server.Handler is nil")
	}
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := cmp.Or(s.RequestTimeout, DefaultRequestTimeout)
	hosts := s.AllowedHosts
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil && ap.Addr().IsLoopback() && len(hosts) == 0 {
		hosts = LoopbackHosts
	}
	next := HostGuard(s.Handler, hosts, logger)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.inFlight.Add(1)
			defer s.inFlight.Add(-1)
			next.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: min(5*time.Second, timeout),
		ReadTimeout:       timeout,
		WriteTimeout:      timeout + 5*time.Second,
		IdleTimeout:       cmp.Or(s.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    cmp.Or(s.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	if s.srv != nil || s.closed {
		s.mu.Unlock()
		l.Close()
		return errors.New("iceserve: a Server serves once")
	}
	s.srv = srv
	s.mu.Unlock()

	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(&connLimit{
			Listener: l, slots: make(chan struct{}, cmp.Or(s.MaxConns, DefaultMaxConns)), perSource: s.MaxConnsPerSource,
			bySource: map[netip.Prefix]int{}, refused: &s.refused, logger: logger,
		})
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	if s.OnShutdown != nil {
		s.OnShutdown(s.inFlight.Load())
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cmp.Or(s.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return errors.New("iceserve: graceful shutdown timed out; requests still in flight were cut off")
	}
	return nil
}

// Close stops the server at once, cutting off the requests in flight, e.g. on a second Ctrl-C.
// Serve then returns.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// InFlight returns the requests being answered.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// ConnsRefused returns how many connections were closed at once because MaxConns were open.
func (s *Server) ConnsRefused() int64 { return s.refused.Load() }

// HostGuard answers 421 to a request whose Host (port aside) is not in hosts, so that a web page
// whose DNS name an attacker points at this address (DNS rebinding) cannot call next from a
// visitor's browser. With no hosts every Host is served. Refusals are logged, one line a second.
func HostGuard(next http.Handler, hosts []string, logger *slog.Logger) http.Handler {
	if len(hosts) == 0 {
		return next
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var lastLog atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, host) }) {
			next.ServeHTTP(w, r)
			return
		}
		if now := time.Now().UnixNano(); now-lastLog.Load() >= int64(time.Second) {
			lastLog.Store(now)
			logger.Warn("iceserve: refused a request for another host (DNS rebinding?); AllowedHosts (serve-ice --allowed-host) adds one",
				"host", strconv.QuoteToASCII(truncate(r.Host, 100)))
		}
		http.Error(w, "unknown host: this server does not answer for it (serve-ice --allowed-host adds one)", http.StatusMisdirectedRequest)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// connLimit is a listener that holds at most cap(slots) connections open, and at most perSource
// from one source when perSource > 0. A connection past either is closed at once, counted in
// refused, and logged, one line a second.
type connLimit struct {
	net.Listener
	slots     chan struct{}
	perSource int
	refused   *atomic.Int64
	logger    *slog.Logger

	mu       sync.Mutex
	bySource map[netip.Prefix]int
	lastLog  time.Time
	unlogged int
}

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.refuse(c, "connections at MaxConns (serve-ice --max-conns)")
			continue
		}
		src, ok := l.takeSource(c)
		if !ok {
			<-l.slots
			l.refuse(c, "this source's connections at MaxConnsPerSource (serve-ice --max-conns-per-source)")
			continue
		}
		return &limitedConn{Conn: c, release: func() {
			l.releaseSource(src)
			<-l.slots
		}}, nil
	}
}

// source is the prefix a connection is counted under: its address, or an IPv6 address's /64.
func source(c net.Conn) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Prefix{}, false
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

func (l *connLimit) takeSource(c net.Conn) (netip.Prefix, bool) {
	if l.perSource <= 0 {
		return netip.Prefix{}, true
	}
	src, ok := source(c)
	if !ok {
		return netip.Prefix{}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource[src] >= l.perSource {
		return src, false
	}
	l.bySource[src]++
	return src, true
}

func (l *connLimit) releaseSource(src netip.Prefix) {
	if l.perSource <= 0 || !src.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
}

func (l *connLimit) refuse(c net.Conn, why string) {
	from := c.RemoteAddr().String()
	c.Close()
	l.refused.Add(1)
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < time.Second {
		l.unlogged++
		l.mu.Unlock()
		return
	}
	unlogged := l.unlogged
	l.lastLog, l.unlogged = now, 0
	l.mu.Unlock()
	l.logger.Warn("iceserve: closed a connection at once: "+why, "from", from, "unlogged_since", unlogged)
}

type limitedConn struct {
	net.Conn
	once    atomic.Bool
	release func()
}

func (c *limitedConn) Close() error {
	if c.once.CompareAndSwap(false, true) {
		c.release()
	}
	return c.Conn.Close()
}
