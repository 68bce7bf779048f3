package turn_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/contract"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// prefix mounts the fake under a path of its own, so a client that builds absolute paths
// instead of appending to its base URL fails loudly.
const prefix = "/mounted/here"

type env struct {
	fake     *turntest.Fake
	client   *turn.Client
	contract *contract.Transport
	apiBase  string
	iceBase  string
}

// setup starts the fake behind a contract-validating transport and returns a client for it with
// fast retries. Extra options are applied last.
func setup(t *testing.T, opts ...turn.Option) *env {
	t.Helper()
	return setupFake(t, turntest.New(), opts...)
}

// setupFake is setup with a fake made with options of its own.
func setupFake(t *testing.T, fake *turntest.Fake, opts ...turn.Option) *env {
	t.Helper()
	ts := httptest.NewServer(http.StripPrefix(prefix, fake.Handler()))
	t.Cleanup(ts.Close)
	return newEnv(t, fake, ts.URL, ts.Client().Transport, opts)
}

// setupInBubble is setup for a test running inside a testing/synctest bubble (see serveInBubble).
func setupInBubble(t *testing.T, fake *turntest.Fake, opts ...turn.Option) *env {
	t.Helper()
	url, tr := serveInBubble(t, fake.Handler())
	return newEnv(t, fake, url, tr, opts)
}

// serveInBubble serves h under prefix for a test running inside a testing/synctest bubble, and
// returns the server's URL and a transport that reaches it. A real net/http server serves h over
// in-memory connections (net.Pipe) that the bubble owns, so that every wait on time — Retry-After,
// backoff, per-attempt timeouts, the fake's delays — passes on the bubble's clock, at once, while
// the requests still go through net/http on both sides. A socket on loopback would not do: a
// goroutine waiting on one is not durably blocked, so the bubble's clock would never move.
func serveInBubble(t *testing.T, h http.Handler) (string, http.RoundTripper) {
	t.Helper()
	l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &http.Server{Handler: http.StripPrefix(prefix, h)}
	go srv.Serve(l)
	tr := &http.Transport{DialContext: l.dial}
	t.Cleanup(func() {
		// Shutdown waits, on the bubble's clock, for handlers still in a fault's delay: a request
		// whose body the handler has not read yet does not see its client go away.
		tr.CloseIdleConnections()
		srv.Shutdown(context.Background())
	})
	return "http://127.0.0.1:8787", tr
}

func newEnv(t *testing.T, fake *turntest.Fake, url string, transport http.RoundTripper, opts []turn.Option) *env {
	t.Helper()
	e := &env{
		fake:     fake,
		contract: &contract.Transport{TB: t, Base: transport},
		apiBase:  url + prefix + "/client/v4",
		iceBase:  url + prefix + "/v1",
	}
	base := []turn.Option{
		turn.WithGetenv(nil),
		turn.WithAPIToken(fake.Token()),
		turn.WithAccountID(fake.AccountID()),
		turn.WithBaseURL(e.apiBase),
		turn.WithICEBaseURL(e.iceBase),
		turn.WithHTTPClient(&http.Client{Transport: e.contract}),
		turn.WithBackoff(time.Millisecond, 5*time.Millisecond),
	}
	c, err := turn.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

// pipeListener is a net.Listener whose connections are made in memory by its dial.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial hands the server end of a new pipe to Accept and returns the client end.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
