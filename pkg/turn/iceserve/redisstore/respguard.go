package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Bounds of what a client made by NewClient reads from Redis. The client allocates a reply's
// announced size before reading it, so an unbounded size (a broken or hostile server) could
// exhaust memory, which unlike a panic cannot be recovered. The store's replies are small: its
// values are at most MaxValueBytes, its arrays five elements.
const (
	maxReplyLine     = 64 << 10 // a header, simple string or error line, CRLF included
	maxReplyBulk     = 8 << 20  // a bulk string
	maxReplyElements = 1 << 16  // an array, map, set or push; and all of one reply's, nested ones included
	// maxReplyDepth bounds how deeply a reply's aggregates nest: the client reads them
	// recursively, and a Go stack overflow, unlike a panic, cannot be recovered. The store's
	// replies nest two deep.
	maxReplyDepth = 16
)

// guardDialer wraps dial so that each connection checks the replies it reads against the bounds
// above; a connection that exceeds one fails its read and is closed.
func guardDialer(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		g := &guardedConn{Conn: c}
		if sc, ok := c.(syscall.Conn); ok {
			// The pool's health check reads the socket itself; it only ever closes a connection
			// with unexpected data, so the scanner cannot be bypassed into desync.
			return &guardedSyscallConn{guardedConn: g, sc: sc}, nil
		}
		return g, nil
	}
}

// guardedConn is a connection to Redis whose reads are scanned as RESP.
type guardedConn struct {
	net.Conn
	scan respScanner
	err  error
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if serr := c.scan.feed(p[:n]); serr != nil {
		c.err = serr
		c.Conn.Close()
		return 0, serr
	}
	return n, err
}

type guardedSyscallConn struct {
	*guardedConn
	sc syscall.Conn
}

func (c *guardedSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// respScanner follows a stream of RESP2 or RESP3 replies, checking every size it announces, how
// deeply aggregates nest, and how many elements one reply holds in all.
type respScanner struct {
	line  []byte  // the line being read
	skip  int64   // bytes of a bulk string (and its CRLF) still to pass
	open  []int64 // elements still to come in each aggregate being read, outermost first
	elems int64   // elements announced so far by the reply being read
}

func (s *respScanner) feed(p []byte) error {
	for len(p) > 0 {
		if s.skip > 0 {
			n := min(int64(len(p)), s.skip)
			s.skip -= n
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(s.line)+len(p) > maxReplyLine {
				return fmt.Errorf("redisstore: Redis sent a line over %d bytes: closing the connection", maxReplyLine)
			}
			s.line = append(s.line, p...)
			return nil
		}
		if len(s.line)+i+1 > maxReplyLine {
			return fmt.Errorf("redisstore: Redis sent a line over %d bytes: closing the connection", maxReplyLine)
		}
		s.line = append(s.line, p[:i+1]...)
		p = p[i+1:]
		err := s.header(s.line)
		s.line = s.line[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// header checks one line: the size a bulk string or an aggregate announces.
func (s *respScanner) header(line []byte) error {
	if len(line) < 3 {
		return nil // the client reports a malformed reply itself
	}
	typ, digits := line[0], bytes.TrimRight(line[1:], "\r\n")
	var limit int64
	switch typ {
	case '$', '!', '=': // bulk string, bulk error, verbatim string
		limit = maxReplyBulk
	case '*', '%', '~', '>', '|': // array, map, set, push, attribute
		limit = maxReplyElements
	default: // a simple value on one line
		s.complete()
		return nil
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange || err == nil && n > limit {
		return fmt.Errorf("redisstore: Redis announced a reply of %s (more than %d): closing the connection", digits, limit)
	}
	if err != nil {
		return nil // the client reports a malformed reply itself
	}
	if typ == '$' || typ == '!' || typ == '=' {
		if n >= 0 {
			s.skip = n + 2
		}
		s.complete()
		return nil
	}
	if typ == '%' || typ == '|' { // a map's or attribute's elements come in pairs
		n *= 2
	}
	if n <= 0 {
		s.complete()
		return nil
	}
	if s.elems += n; s.elems > maxReplyElements {
		return fmt.Errorf("redisstore: Redis sent a reply of more than %d elements in all: closing the connection", maxReplyElements)
	}
	if len(s.open) == maxReplyDepth {
		return fmt.Errorf("redisstore: Redis sent a reply nested more than %d deep: closing the connection", maxReplyDepth)
	}
	s.open = append(s.open, n)
	return nil
}

// complete counts one whole value against the aggregates it is in, closing those it fills.
func (s *respScanner) complete() {
	for len(s.open) > 0 {
		top := len(s.open) - 1
		if s.open[top]--; s.open[top] > 0 {
			return
		}
		s.open = s.open[:top]
	}
	s.elems = 0
}

// guard installs guardDialer on o, around o's own dialer if it has one.
func guard(o *redis.Options) {
	dial := o.Dialer
	if dial == nil {
		dial = redis.NewDialer(o)
	}
	o.Dialer = guardDialer(dial)
}
