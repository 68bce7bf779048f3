package turntest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Server is a Fake listening on a loopback port, in the manner of httptest.Server.
type Server struct {
	*Fake

	URL        string // root, e.g. http://127.0.0.1:41234
	APIBaseURL string // key-management API root: URL + "/client/v4"
	ICEBaseURL string // ICE credentials API root: URL + "/v1"

	ts *httptest.Server
}

// NewServer starts a Fake on a free loopback port (or the WithAddr address) and returns it. Close
// it when done. It serves HTTP only; package turnrelay attaches a TURN relay to it. It panics only
// when it cannot listen, as httptest.NewServer does; use NewServerErr to get that as an error
// instead.
func NewServer(opts ...Option) *Server {
	s, err := NewServerErr(opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// NewServerErr is NewServer that reports a failure to listen, e.g. a port in use, as an error.
func NewServerErr(opts ...Option) (*Server, error) {
	st := newSettings(opts)
	addr := st.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("turntest: listen on %s: %w", addr, err)
	}
	f := New(opts...)
	ts := httptest.NewUnstartedServer(f.Handler())
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	return &Server{
		Fake:       f,
		URL:        ts.URL,
		APIBaseURL: ts.URL + "/client/v4",
		ICEBaseURL: ts.URL + "/v1",
		ts:         ts,
	}, nil
}

// Close stops the server, waiting for requests in flight to finish. A relay attached to it is
// closed on its own.
func (s *Server) Close() {
	s.ts.Close()
	s.failures.Flush()
}

// HTTPClient returns an *http.Client for the server.
func (s *Server) HTTPClient() *http.Client { return s.ts.Client() }

// ClientOptions returns the turn options that point a Client at the server, with its token and
// default account. Append options of your own and pass them to turn.NewClient.
func (s *Server) ClientOptions() []turn.Option {
	return []turn.Option{
		turn.WithBaseURL(s.APIBaseURL),
		turn.WithICEBaseURL(s.ICEBaseURL),
		turn.WithAPIToken(s.Token()),
		turn.WithAccountID(s.AccountID()),
		turn.WithHTTPClient(s.HTTPClient()),
		turn.WithGetenv(nil),
	}
}

// Client returns a turn.Client pointed at the server.
func (s *Server) Client() *turn.Client {
	c, err := turn.NewClient(s.ClientOptions()...)
	if err != nil {
		// Unreachable unless WithToken or WithAccountID set values the client refuses.
		panic(fmt.Sprintf("turntest: the fake's own settings were refused: %v", err))
	}
	return c
}
