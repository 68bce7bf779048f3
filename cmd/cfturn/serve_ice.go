package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
)

func (a *app) serveICECommand() *cobra.Command {
	var flags iceFlags
	var addr, identityHeader string
	var origins []string
	var examplePage bool
	cfg := turn.ICEHandlerConfig{}
	cmd := &cobra.Command{
		Use:   "serve-ice --key-id ID [--addr 127.0.0.1:8080]",
		Short: "Serve fresh ICE credentials to browsers over HTTP",
		Long: `Serve {"iceServers": [...], "expiresAt": ...} on every GET or POST, minted from one TURN key and
cached per caller, ready for new RTCPeerConnection. The key's secret comes from CFTURN_KEY_SECRET or
--key-secret-file. Put it behind your authentication and pass the caller's identity in a header
(--identity-header); without one, callers are told apart by their address. Ctrl-C stops it after
answering the requests in flight.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, secret, err := flags.setup(a)
			if err != nil {
				return err
			}
			cfg.Client, cfg.KeyID, cfg.KeySecret, cfg.AllowedOrigins = c, flags.keyID, secret, origins
			if identityHeader != "" {
				cfg.Identity = func(r *http.Request) string { return r.Header.Get(identityHeader) }
			}
			h, err := turn.NewICEHandler(cfg)
			if err != nil {
				return err
			}
			var handler http.Handler = h
			if examplePage {
				handler = withExamplePage(h)
				fmt.Fprintf(a.stderr, "cfturn: the example page is at %s on the address below\n", examplePagePath)
			}
			return a.serve(cmd.Context(), addr, handler, cfg.RequestTimeout)
		},
	}
	flags.register(cmd)
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.DurationVar(&cfg.TTL, "ttl", 24*time.Hour, "lifetime of minted credentials")
	f.StringSliceVar(&origins, "allow-origin", nil, "browser origin allowed to call cross-origin (repeatable; * for any)")
	f.StringVar(&identityHeader, "identity-header", "", "request header naming the caller (default: the remote address)")
	f.Float64Var(&cfg.RatePerMinute, "rate", 30, "requests per minute per caller (negative: no limit)")
	f.IntVar(&cfg.Burst, "burst", 10, "requests a caller may make at once")
	f.DurationVar(&cfg.RequestTimeout, "timeout", 10*time.Second, "time limit for one request")
	f.BoolVar(&examplePage, "example-page", false, "also serve the browser example page at "+examplePagePath+" (it tests TURN with these credentials)")
	return cmd
}

// serve runs h on addr until ctx ends, then shuts down gracefully.
func (a *app) serve(ctx context.Context, addr string, h http.Handler, timeout time.Duration) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       timeout,
		WriteTimeout:      timeout + 5*time.Second,
		IdleTimeout:       time.Minute,
	}
	if a.json {
		err = writeJSON(a.stdout, map[string]string{"url": "http://" + l.Addr().String() + "/"})
	} else {
		_, err = fmt.Fprintf(a.stdout, "cfturn serving ICE credentials on http://%s/ (Ctrl-C to stop)\n", l.Addr())
	}
	if err != nil {
		l.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(a.stderr, "cfturn: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
