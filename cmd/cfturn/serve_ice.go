package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turnjs"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// serveICEOptions are serve-ice's flags that are not handler fields.
type serveICEOptions struct {
	addr        string
	origins     []string
	logFormat   string
	logLevel    string
	skipCheck   bool
	maxHeader   int
	shutdownMax time.Duration
	examplePage bool
	redisURL    string
	redisCA     string
	hosts       []string
	maxConns    int
	perSource   int
	clientIP    string
	adminAddr   string         // where /readyz and /metrics go instead of the public listener
	store       *redisStores   // set when Redis is in use: the store of the key in use
	interop     interopOptions // TURN REST, Matrix and coturn
	x           *interop
	guard       *turnusage.Guard // set with --egress-budget
}

func (a *app) serveICECommand() *cobra.Command {
	var flags iceFlags
	var o serveICEOptions
	var reload keyReload
	var budget budgetFlags
	cfg := iceserve.Config{}
	cmd := &cobra.Command{
		Use:   "serve-ice --key-id ID [--addr 127.0.0.1:8080]",
		Short: "Serve fresh ICE credentials to browsers over HTTP",
		Long: `Serve {"iceServers": [...], "expiresAt": ...} on every GET or POST, minted from one TURN key and
cached per caller, ready for new RTCPeerConnection. The key's secret comes from CFTURN_KEY_SECRET or
--key-secret-file.

Put it behind your authentication and pass the caller's identity in a header your proxy sets
(--identity-header); never let the browser choose it. Without one, callers are told apart by their
address, which behind a load balancer is the balancer's.

Limits: --rate/--burst per caller, --mint-rate/--mint-burst for upstream mints in all,
--network-share for new callers of one network; docs/serve-ice.md says what each defends.
/cfturn.js serves the browser helper that keeps calls' credentials fresh. /healthz
answers while the process runs, /readyz while the upstream answered its last call, /metrics serves
Prometheus metrics (with --admin-addr, /readyz and /metrics only there). Several replicas share their cache and
limits through Redis with --redis-url or CFTURN_REDIS_URL; if Redis fails, each goes on alone. It
mints once at start-up so a wrong key or an unreachable upstream fails at once
(--skip-startup-check to start anyway). It switches to a new key without a restart on SIGHUP and
when --key-id-file or --key-secret-file changes, once a check mint with the new key works. Logs go
to stderr. Ctrl-C stops it after answering the requests in flight; a second Ctrl-C stops it at once.

For servers that speak other formats, on the same cache, limits and budget (docs/interop.md):
--turn-rest-path answers the TURN REST API (Janus's turn_rest_api), --matrix-homeserver answers
Matrix's /voip/turnServer for verified users, and --coturn-url with --coturn-secret-file adds
your own coturn, merged into every answer or as a fallback (--coturn-mode).

--egress-budget 900GB guards spend: the month-to-date egress of the key (and of every key
switched to since start) is read from the GraphQL
Analytics API (CLOUDFLARE_API_TOKEN with Account Analytics Read, CLOUDFLARE_ACCOUNT_ID) every
--egress-poll, one query each; at 80 % it warns, and at the budget answers carry STUN only (or
coturn only, with --coturn-url) until the month ends (UTC). If the analytics fail, the last known state is kept and TURN is served.`,
		Example: `  cfturn serve-ice --key-id "$KEY_ID" --key-secret-file turn-key.secret --identity-header X-User
  cfturn --base-url http://127.0.0.1:8787/client/v4 serve-ice --key-id "$KEY_ID" --key-secret-file turn-key.secret --example-page`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(a.stderr, o.logFormat, o.logLevel)
			if err != nil {
				return err
			}
			if err := checkServeICEFlags(cmd, &cfg); err != nil {
				return err
			}
			if o.clientIP != "" {
				cfg.SourceNetwork = iceserve.NetworkFromHeader(o.clientIP)
			}
			if cfg.IdentityHeader != "" && !cmd.Flags().Changed("max-conns-per-source") {
				o.perSource = 0 // behind the proxy that sets the identity, every connection is the proxy's
			}
			if err := checkListenAddr("addr", o.addr); err != nil {
				return err
			}
			if o.x, err = o.interop.setup(a.getenv, cfg.TTL, a.stderr); err != nil {
				return err
			}
			o.x.configure(&cfg)
			if err := reload.resolve(&flags); err != nil {
				return err
			}
			c, secret, err := flags.setup(a)
			if err != nil {
				return err
			}
			cfg.Client, cfg.KeyID, cfg.KeySecret, cfg.AllowedOrigins, cfg.Logger = c, flags.keyID, secret, o.origins, logger
			store, closeStore, err := a.sharedStore(o.redisURL, o.redisCA, flags.keyID, secret, logger)
			if err != nil {
				return err
			}
			defer closeStore()
			var stores *redisStores
			var newStore func(string, turn.Secret) (iceserve.Store, func(), error)
			if store != nil {
				stores = newRedisStores(store)
				cfg.Store, o.store = store, stores
				var closeNew func()
				newStore, closeNew = stores.factory(a, o.redisURL, o.redisCA, logger)
				defer closeNew()
			}
			if o.guard, err = a.guard(cmd.Context(), budget, flags.keyID, guardStore(store), logger); err != nil {
				return err
			}
			if o.guard != nil {
				cfg.WithholdTURN = func(string) bool { return o.guard.OverBudget() }
			}
			m := newICEMetrics()
			cfg.OnMint = m.observeMint
			h, err := iceserve.NewRotator(cfg)
			if err != nil {
				return err
			}
			m.register(h)
			if store != nil {
				m.reg.MustRegister(newRedisCollector(stores))
			}
			defer a.startKeyWatch(cmd.Context(), &reload, &flags, h, secret, stores, newStore, o.guard, logger)()
			if o.guard != nil {
				m.reg.MustRegister(newGuardCollector(o.guard, h))
			}
			return a.serveICE(cmd.Context(), o, cfg, h, m)
		},
	}
	flags.register(cmd, "the TURN key's ID (required unless --key-id-file)")
	f := cmd.Flags()
	reload.register(f)
	budget.register(f)
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.DurationVar(&cfg.TTL, "ttl", iceserve.DefaultTTL, "lifetime of minted credentials, 1s to 48h")
	f.StringSliceVar(&o.origins, "allow-origin", nil, "browser origin scheme://host[:port] allowed to call cross-origin (repeatable; * for any)")
	f.StringVar(&cfg.IdentityHeader, "identity-header", "", "request header, set by your proxy, naming the caller (default: the remote address)")
	f.IntVar(&cfg.MaxIdentityBytes, "max-identity-bytes", iceserve.DefaultMaxIdentityBytes, "longest identity accepted; longer ones are answered 400")
	f.Float64Var(&cfg.RatePerMinute, "rate", iceserve.DefaultRatePerMinute, "requests per minute per caller, 0.1 to 1e6 (negative: no limit)")
	f.IntVar(&cfg.Burst, "burst", iceserve.DefaultBurst, "requests a caller may make at once")
	f.Float64Var(&cfg.MintsPerSecond, "mint-rate", iceserve.DefaultMintsPerSecond, "upstream mints per second in all, 0.01 to 1e6")
	f.IntVar(&cfg.MintBurst, "mint-burst", iceserve.DefaultMintBurst, "upstream mints at once in all")
	f.StringVar(&o.clientIP, "client-ip-header", "", "request header, set by your proxy, holding the client's address (e.g. X-Real-IP): its /24 or /48 is the network --network-share counts")
	f.Float64Var(&cfg.NetworkShare, "network-share", iceserve.DefaultNetworkShare, "part of the mint budget that new callers from one network (/24, /48) may take, above 0 to 1 (1: no share); with --identity-header only where --client-ip-header names the client's address")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", iceserve.DefaultMaxInFlight, "upstream calls in flight at once")
	f.DurationVar(&cfg.RequestTimeout, "timeout", iceserve.DefaultRequestTimeout, "time limit for reading and answering one request (0: the default)")
	f.BoolVar(&cfg.AllowCredentials, "allow-credentials", false, "send Access-Control-Allow-Credentials, for an identity in a cookie")
	f.BoolVar(&cfg.POSTOnly, "post-only", false, "refuse GET")
	f.BoolVar(&cfg.RefuseCrossSiteGET, "refuse-cross-site-get", false, "refuse GETs a browser sent for another site (Sec-Fetch-Site) without CORS")
	f.BoolVar(&cfg.KeepPort53, "keep-port-53", false, "keep port-53 URLs, which browsers block")
	f.BoolVar(&o.examplePage, "example-page", false, "also serve the browser example page at "+examplePagePath+" (it tests TURN with these credentials)")
	f.StringVar(&o.redisURL, "redis-url", "", "share cache and limits with other replicas through Redis: redis://[user@]host:port/db or rediss:// (default $"+redisURLEnv+"; put a password there, not here)")
	f.StringVar(&o.redisCA, "redis-ca-file", "", "PEM certificate(s) to trust for a rediss:// Redis, besides the system's")
	f.StringSliceVar(&o.hosts, "allowed-host", nil, "Host header to answer (repeatable); default on a loopback address: localhost, 127.0.0.1, ::1 only (against DNS rebinding), else any")
	f.IntVar(&o.maxConns, "max-conns", 10000, "connections open at once; more are closed at once")
	f.IntVar(&o.perSource, "max-conns-per-source", 256, "connections open at once from one address (IPv6: /64); 0 for no bound. Not applied with --identity-header unless given: the proxy is then the one source")
	f.StringVar(&o.adminAddr, "admin-addr", "", "serve /readyz and /metrics on this address instead of --addr, e.g. 127.0.0.1:9090 (expose it to your probes and Prometheus only)")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&o.skipCheck, "skip-startup-check", false, "start without minting once first")
	o.interop.register(f)
	o.maxHeader = 64 << 10
	o.shutdownMax = 30 * time.Second
	return cmd
}

// checkServeICEFlags refuses flag values the handler would take as "use the default": the CLI
// shows its defaults, so a zero given on purpose is a mistake. --timeout 0 is the exception,
// documented as the default, as in the library.
func checkServeICEFlags(cmd *cobra.Command, cfg *iceserve.Config) error {
	f := cmd.Flags()
	switch {
	case f.Changed("ttl") && (cfg.TTL < time.Second || cfg.TTL > turn.MaxICETTL):
		return usagef("--ttl %v: credentials live 1s to %v (Cloudflare's maximum)", cfg.TTL, turn.MaxICETTL)
	case f.Changed("rate") && (cfg.RatePerMinute == 0 || math.IsNaN(cfg.RatePerMinute)):
		return usagef("--rate %v: give requests per minute from 0.1 to 1e6, or a negative number for no limit", cfg.RatePerMinute)
	case f.Changed("mint-rate") && cfg.MintsPerSecond == 0:
		return usagef("--mint-rate 0: give mints per second from 0.01 to 1e6")
	case f.Changed("network-share") && !(cfg.NetworkShare > 0 && cfg.NetworkShare <= 1):
		return usagef("--network-share %v: give a part of the mint budget above 0 and at most 1, e.g. 0.25 (1 turns the share off)", cfg.NetworkShare)
	case cfg.RequestTimeout < 0:
		return usagef("--timeout %v: must not be negative (0 means the default, %v)", cfg.RequestTimeout, iceserve.DefaultRequestTimeout)
	}
	for _, name := range []string{"burst", "mint-burst", "max-in-flight", "max-identity-bytes", "max-conns"} {
		if v, _ := f.GetInt(name); v < 1 {
			return usagef("--%s %d: must be at least 1", name, v)
		}
	}
	if v, _ := f.GetInt("max-conns-per-source"); v < 0 {
		return usagef("--max-conns-per-source %d: must be 0 (no bound) or more", v)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = iceserve.DefaultRequestTimeout
	}
	return nil
}

// newLogger returns the server's logger on w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}

// serveICE serves the handler with the health, readiness and metrics endpoints beside it.
func (a *app) serveICE(ctx context.Context, o serveICEOptions, cfg iceserve.Config, h *iceserve.Rotator, m *iceMetrics) error {
	logger := cfg.Logger
	mux := http.NewServeMux()
	admin := mux
	if o.adminAddr != "" {
		admin = http.NewServeMux()
		admin.HandleFunc("GET /healthz", healthz)
	}
	mux.HandleFunc("GET /healthz", healthz)
	admin.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Redis being down never makes a replica unready: it serves on local state.
		redisState := ""
		if o.store != nil {
			redisState = "; redis: up"
			if !o.store.Healthy() {
				redisState = "; redis: down, serving on local state"
			}
		}
		redisState += guardReadiness(o.guard)
		if err := h.Ready(r.Context()); err != nil {
			http.Error(w, err.Error()+redisState, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+redisState)
	})
	admin.Handle("GET /metrics", m.handler())
	mux.Handle("/{$}", h) // credentials at the root only: a browser's /favicon.ico mints nothing
	o.x.mount(mux, h, m, logger)
	mux.Handle("GET /cfturn.js", turnjs.Handler())
	if o.examplePage {
		mux.Handle(examplePagePath, examplePage())
	}
	timeout := cfg.RequestTimeout
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	stopAdmin, adminURL, err := serveAdmin(o.adminAddr, admin, timeout, logger)
	if err != nil {
		l.Close()
		return err
	}
	defer stopAdmin()
	// The port is taken before the start-up mint, so a port in use costs no credential.
	if !o.skipCheck {
		if err := h.CheckUpstream(ctx); err != nil {
			l.Close()
			return fmt.Errorf("start-up mint failed, not serving: %w (check --key-id, the key secret and --ice-base-url, or pass --skip-startup-check)", err)
		}
	}
	srv := &iceserve.Server{
		Handler:           mux,
		AllowedHosts:      o.hosts,
		MaxConns:          o.maxConns,
		MaxConnsPerSource: o.perSource,
		RequestTimeout:    timeout,
		MaxHeaderBytes:    o.maxHeader,
		ShutdownTimeout:   o.shutdownMax,
		Logger:            logger,
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cfturn_serve_connections_refused_total", Help: "Connections closed at once because --max-conns were open.",
	}, func() float64 { return float64(srv.ConnsRefused()) }))
	url := "http://" + l.Addr().String() + "/"
	logger.Info("cfturn serve-ice: serving", "url", url, "read_timeout", timeout.String(), "request_timeout", timeout.String(),
		"ttl", cfg.TTL.String(), "mint_rate", cfg.MintsPerSecond, "rate_per_minute", cfg.RatePerMinute)
	pageURL := ""
	if o.examplePage {
		pageURL = strings.TrimSuffix(url, "/") + examplePagePath
	}
	return a.serveOn(ctx, l, srv, url, pageURL, adminURL)
}

func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// serveAdmin serves mux on addr, apart from the credentials, until stop is called; with no
// addr it does nothing. The readiness probe and the metrics tell an attacker when the upstream
// is failing, and each /readyz can make a probe: they belong where only probes and Prometheus
// reach.
func serveAdmin(addr string, mux *http.ServeMux, timeout time.Duration, logger *slog.Logger) (stop func(), url string, err error) {
	if addr == "" {
		return func() {}, "", nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--admin-addr: %w", err)
	}
	// Any Host off loopback: a prober or Prometheus names the address it was given.
	srv := &iceserve.Server{Handler: mux, MaxConns: 64, RequestTimeout: timeout, MaxHeaderBytes: 8 << 10, Logger: logger}
	url = "http://" + l.Addr().String() + "/"
	logger.Info("cfturn serve-ice: admin endpoints /healthz, /readyz and /metrics", "url", url)
	go srv.Serve(context.Background(), l)
	return func() { srv.Close() }, url, nil
}

// checkListenAddr refuses an address net.Listen would refuse in its own terms, such as a bare
// port.
func checkListenAddr(flag, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		example := "127.0.0.1:8080"
		if _, err := strconv.Atoi(addr); err == nil {
			example = "127.0.0.1:" + addr
		}
		return usagef("--%s %q: use HOST:PORT, e.g. %s (or :PORT for every interface)", flag, printable(addr), example)
	}
	return nil
}

// serveOn announces url (and the example page's pageURL and the admin listener's adminURL, when
// there are) and runs srv on l
// until ctx ends, then shuts down gracefully: it answers the requests in flight, unless a second
// Ctrl-C comes on a.interrupts, which stops it at once.
func (a *app) serveOn(ctx context.Context, l net.Listener, srv *iceserve.Server, url, pageURL, adminURL string) error {
	var err error
	if a.json {
		banner := map[string]string{"url": url}
		if pageURL != "" {
			banner["examplePageURL"] = pageURL
		}
		if adminURL != "" {
			banner["adminURL"] = adminURL
		}
		err = writeJSON(a.stdout, banner)
	} else {
		_, err = fmt.Fprintf(a.stdout, "cfturn serving ICE credentials on %s (Ctrl-C to stop)\n", url)
		if err == nil && pageURL != "" {
			_, err = fmt.Fprintf(a.stdout, "the example page is at %s\n", pageURL)
		}
		if err == nil && adminURL != "" {
			_, err = fmt.Fprintf(a.stdout, "/healthz, /readyz and /metrics are at %s (expose them to probes and Prometheus only)\n", adminURL)
		}
	}
	if err != nil {
		l.Close()
		return err
	}
	shuttingDown := make(chan struct{})
	srv.OnShutdown = func(n int64) {
		if n > 0 {
			fmt.Fprintf(a.stderr, "cfturn: shutting down: waiting for %d %s to finish (Ctrl-C again to quit)\n", n, plural(n, "request", "requests"))
		} else {
			fmt.Fprintln(a.stderr, "cfturn: shutting down")
		}
		close(shuttingDown)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	select {
	case err := <-done:
		return err
	case <-shuttingDown:
	}
	select {
	case err := <-done:
		return err
	case <-a.interrupts:
		n := srv.InFlight()
		srv.Close() // Serve returns once its shutdown notices, which can take a poll interval: no wait
		return fmt.Errorf("interrupted again: stopped at once, cutting off %d %s in flight", n, plural(n, "request", "requests"))
	}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
