package main

import (
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// loopbackHosts are the Host names a server listening on loopback answers by default.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// hostGuard answers 421 to a request whose Host (port aside) is not in hosts, so that a web page
// whose DNS name an attacker points at this address (DNS rebinding) cannot call the server from a
// visitor's browser. With no hosts every Host is served.
func hostGuard(next http.Handler, hosts []string, logger *slog.Logger) http.Handler {
	if len(hosts) == 0 {
		return next
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
			logger.Warn("cfturn serve-ice: refused a request for another host (DNS rebinding?); --allowed-host adds one",
				"host", printable(truncate(r.Host, 100)))
		}
		http.Error(w, "unknown host: pass --allowed-host to serve it", http.StatusMisdirectedRequest)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// connLimit is a listener that holds at most max connections open: one past that is closed at
// once, so idle connections cannot exhaust the process's file descriptors.
type connLimit struct {
	net.Listener
	slots   chan struct{}
	refused atomic.Int64
}

func limitConns(l net.Listener, max int) *connLimit {
	return &connLimit{Listener: l, slots: make(chan struct{}, max)}
}

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.refused.Add(1)
			c.Close()
		}
	}
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
