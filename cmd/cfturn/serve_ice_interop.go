package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// turnRESTKeyEnv holds the TURN REST API key when --turn-rest-key-file is not given.
const turnRESTKeyEnv = "CFTURN_TURN_REST_KEY"

// interopOptions are serve-ice's flags for the servers that speak other formats: the TURN REST
// API (Janus, coturn-style consumers), Matrix's /voip/turnServer, and a self-hosted coturn.
type interopOptions struct {
	turnRESTPath     string
	turnRESTKeyFile  string
	matrixHomeserver string
	matrixCacheTTL   time.Duration
	coturnSecretFile string
	coturnURLs       []string
	coturnMode       string
}

// interop is what the interop flags set up.
type interop struct {
	turnRESTPath string
	turnRESTKeys *iceserve.TURNRESTKeys
	matrix       *iceserve.MatrixVerifier
	coturn       *iceserve.Coturn
	coturnMode   string
}

func (o *interopOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.turnRESTPath, "turn-rest-path", "", "also answer the TURN REST API (Janus's turn_rest_api, coturn's format) on this path, e.g. /turn-rest; the key from --turn-rest-key-file or $"+turnRESTKeyEnv)
	f.StringVar(&o.turnRESTKeyFile, "turn-rest-key-file", "", "file of the TURN REST API key(s) callers must send, one a line (the first for new callers; others while rotating)")
	f.StringVar(&o.matrixHomeserver, "matrix-homeserver", "", "also answer Matrix's GET /_matrix/client/{v3,r0}/voip/turnServer, verifying access tokens at this homeserver, e.g. https://matrix.example.org")
	f.DurationVar(&o.matrixCacheTTL, "matrix-token-cache", iceserve.DefaultMatrixCacheTTL, "how long a verified Matrix token is trusted without asking again (a revoked token works at most this long), 0 to 10m")
	f.StringVar(&o.coturnSecretFile, "coturn-secret-file", "", "file of your coturn's static-auth-secret(s), newest first (use-auth-secret); with --coturn-url")
	f.StringSliceVar(&o.coturnURLs, "coturn-url", nil, "your coturn's turn: or turns: URL (repeatable), e.g. turn:turn.example.org:3478?transport=udp")
	f.StringVar(&o.coturnMode, "coturn-mode", "merge", "merge: coturn's servers in every answer beside Cloudflare's; fallback: coturn's only while Cloudflare cannot be minted from")
}

// setup reads the keys and secrets the flags name and checks them, before anything listens: a
// missing, empty or unreadable file stops the start with an error naming the flag.
func (o *interopOptions) setup(getenv func(string) string, ttl time.Duration, stderr io.Writer) (*interop, error) {
	x := &interop{turnRESTPath: o.turnRESTPath, coturnMode: o.coturnMode}
	switch {
	case o.turnRESTPath != "":
		if !strings.HasPrefix(o.turnRESTPath, "/") || o.turnRESTPath == "/" || strings.ContainsAny(o.turnRESTPath, "?#{} \t") {
			return nil, usagef("--turn-rest-path %q: give a path of its own, e.g. /turn-rest", printable(o.turnRESTPath))
		}
		if strings.HasPrefix(o.turnRESTPath, "/_matrix/") || o.turnRESTPath == examplePagePath || strings.TrimSuffix(o.turnRESTPath, "/") == "/metrics" ||
			o.turnRESTPath == "/healthz" || o.turnRESTPath == "/readyz" {
			return nil, usagef("--turn-rest-path %s is taken by another endpoint; use e.g. /turn-rest", o.turnRESTPath)
		}
		var err error
		if o.turnRESTKeyFile != "" {
			warnIfReadable(o.turnRESTKeyFile, "--turn-rest-key-file", stderr)
			x.turnRESTKeys, err = iceserve.ReadTURNRESTKeyFile(o.turnRESTKeyFile)
		} else if k := strings.TrimSpace(getenv(turnRESTKeyEnv)); k != "" {
			x.turnRESTKeys, err = iceserve.NewTURNRESTKeys(turn.NewSecret(k))
		} else {
			return nil, usagef("--turn-rest-path needs the API key callers send: --turn-rest-key-file FILE or $%s (make one with: openssl rand -hex 32)", turnRESTKeyEnv)
		}
		if err != nil {
			return nil, usagef("--turn-rest-key-file: %w", err)
		}
	case o.turnRESTKeyFile != "":
		return nil, usagef("--turn-rest-key-file without --turn-rest-path: give the path to serve the TURN REST API on, e.g. --turn-rest-path /turn-rest")
	}
	if o.matrixHomeserver != "" {
		v, err := iceserve.NewMatrixVerifier(iceserve.MatrixConfig{Homeserver: o.matrixHomeserver, CacheTTL: o.matrixCacheTTL})
		if err != nil {
			return nil, usagef("--matrix-homeserver: %w", err)
		}
		if o.matrixCacheTTL == 0 {
			fmt.Fprintln(stderr, "cfturn: note: --matrix-token-cache 0 means the default,", iceserve.DefaultMatrixCacheTTL)
		}
		x.matrix = v
	}
	if o.coturnMode != "merge" && o.coturnMode != "fallback" {
		return nil, usagef("--coturn-mode %q: use merge or fallback", printable(o.coturnMode))
	}
	switch {
	case o.coturnSecretFile == "" && len(o.coturnURLs) == 0:
		return x, nil
	case o.coturnSecretFile == "":
		return nil, usagef("--coturn-url needs --coturn-secret-file, the file holding your coturn's static-auth-secret")
	case len(o.coturnURLs) == 0:
		return nil, usagef("--coturn-secret-file needs --coturn-url, your coturn's turn: URL, e.g. turn:turn.example.org:3478?transport=udp")
	}
	warnIfReadable(o.coturnSecretFile, "--coturn-secret-file", stderr)
	secrets, err := iceserve.ReadCoturnSecretFile(o.coturnSecretFile)
	if err != nil {
		return nil, usagef("--coturn-secret-file: %w", err)
	}
	if ttl == 0 {
		ttl = iceserve.DefaultTTL
	}
	c, err := iceserve.NewCoturn(iceserve.CoturnConfig{Secrets: secrets, URLs: o.coturnURLs, TTL: ttl})
	if err != nil {
		return nil, usagef("--coturn-url: %w", err)
	}
	x.coturn = c
	return x, nil
}

// warnIfReadable warns when others than the owner may read a file of secrets.
func warnIfReadable(path, flag string, w io.Writer) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(w, "cfturn: warning: %s %s can be read by group or others (mode %04o); run chmod 600 on it\n", flag, printable(path), st.Mode().Perm())
	}
}

// configure hands the coturn provider to the handler.
func (x *interop) configure(cfg *iceserve.Config) {
	if x.coturn == nil {
		return
	}
	cfg.Coturn, cfg.CoturnMode = x.coturn, iceserve.CoturnMerge
	if x.coturnMode == "fallback" {
		cfg.CoturnMode = iceserve.CoturnFallback
	}
}

// mount serves the modes beside the browsers' endpoint, on the handler's own state, and
// registers their metrics.
func (x *interop) mount(mux *http.ServeMux, h *iceserve.Rotator, m *iceMetrics, logger *slog.Logger) {
	if x.turnRESTPath != "" {
		mux.Handle(x.turnRESTPath, h.TURNRESTHandler(x.turnRESTKeys))
		logger.Info("cfturn serve-ice: TURN REST API on", "path", x.turnRESTPath)
	}
	if x.matrix != nil {
		matrix := h.MatrixHandler(x.matrix)
		for _, p := range iceserve.MatrixTURNServerPaths {
			mux.Handle(p, matrix)
		}
		logger.Info("cfturn serve-ice: Matrix /voip/turnServer on", "paths", strings.Join(iceserve.MatrixTURNServerPaths, " "))
	}
	if x.coturn != nil {
		logger.Info("cfturn serve-ice: coturn provider", "mode", x.coturnMode, "urls", strings.Join(x.coturn.URLs(), " "))
	}
	m.reg.MustRegister(&interopCollector{h: h, matrix: x.matrix})
}

// interopCollector exposes the coturn fallbacks and the Matrix token checks to Prometheus; the
// modes' refusals are in cfturn_ice_refusals_total with the browsers'.
type interopCollector struct {
	h      interface{ Stats() iceserve.Stats }
	matrix *iceserve.MatrixVerifier
}

var (
	coturnFallbacksDesc = prometheus.NewDesc("cfturn_ice_coturn_fallbacks_total", "Answers served by coturn alone because Cloudflare could not be minted from (--coturn-mode fallback).", nil, nil)
	matrixLookupsDesc   = prometheus.NewDesc("cfturn_matrix_whoami_total", "Matrix access-token checks by outcome: lookup (asked the homeserver), cache_hit, unknown_token, unavailable.", []string{"outcome"}, nil)
)

// Describe implements prometheus.Collector.
func (c *interopCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- coturnFallbacksDesc
	ch <- matrixLookupsDesc
}

// Collect implements prometheus.Collector.
func (c *interopCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(coturnFallbacksDesc, prometheus.CounterValue, float64(c.h.Stats().CoturnFallbacks))
	if c.matrix == nil {
		return
	}
	st := c.matrix.Stats()
	for outcome, n := range map[string]int64{"lookup": st.Lookups, "cache_hit": st.CacheHits, "unknown_token": st.UnknownToken, "unavailable": st.Unavailable} {
		ch <- prometheus.MustNewConstMetric(matrixLookupsDesc, prometheus.CounterValue, float64(n), outcome)
	}
}
