package iceserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Defaults of Config. A test checks that the documentation and the code agree.
const (
	DefaultTTL              = 24 * time.Hour
	DefaultRefreshFraction  = 0.5
	DefaultMaxIdentityBytes = 256
	DefaultRatePerMinute    = 30
	DefaultBurst            = 10
	DefaultMintsPerSecond   = 50 // a tenth of the ~500/s Cloudflare suggests starting at
	DefaultMintBurst        = 100
	DefaultMaxInFlight      = 16
	DefaultMaxIdentities    = 10_000
	DefaultMaxCallers       = 100_000
	DefaultRequestTimeout   = 10 * time.Second
	DefaultRetryAfterMax    = 60 * time.Second
	DefaultNetworkShare     = 0.25
)

// Config configures a Handler. Zero fields take the documented defaults; NewHandler
// refuses values out of range (NaN and infinities included) with an error that names the field.
type Config struct {
	Client    *turn.Client // required; the handler uses a copy that never retries (see Handler)
	KeyID     string       // required: the TURN key's uid
	KeySecret turn.Secret  // required: the TURN key's secret

	// TTL is the lifetime of minted credentials (default 24h, at most 48h, Cloudflare's maximum).
	TTL time.Duration
	// RefreshFraction is the part of TTL, counted from when the mint request was sent, after
	// which a cached credential is replaced by a new one (default 0.5, above 0, at most 1).
	RefreshFraction float64
	// MinRemaining is the least lifetime a credential served from the cache must have left when
	// its refresh fails ("stale while valid"; default TTL/4). With less left the caller gets the
	// error instead. It must be below TTL.
	MinRemaining time.Duration

	// IdentityHeader names the request header that identifies the caller, e.g. "X-User". Set it
	// only to a header your authenticating proxy sets and overwrites: a browser can send any
	// header it likes. The CORS preflight allows it. Identity, when set, takes precedence.
	// A request carrying it more than once is answered 400: a proxy that appends instead of
	// replacing leaves the browser's value first.
	IdentityHeader string
	// Identity names the caller that credentials are minted, cached and rate limited for.
	// Default: IdentityHeader's value, else the remote address's host (an IPv6 address's /64,
	// which one client can fill with addresses), which behind a load balancer or proxy is the
	// balancer's, so all callers would share one limit.
	Identity func(*http.Request) string
	// MaxIdentityBytes caps an identity's length (default 256). A longer one is answered 400:
	// no real identity is that long, and nothing is stored for it.
	MaxIdentityBytes int
	// CustomIdentifier, when set, tags each credential with CustomIdentifier(identity) for
	// Cloudflare's per-user usage analytics. It is off by default because an identity may be
	// personal data, which this would send to a third party: return a pseudonym, e.g. a keyed
	// hash, unless you have reason not to. A value GenerateICEServers would refuse (over
	// MaxCustomIdentifierLen characters, or not printable) answers that request 400.
	CustomIdentifier func(identity string) string
	// Authorize, when set, runs before anything is minted; a non-nil error answers 403.
	Authorize func(*http.Request) error

	// AllowedOrigins lists the browser origins, scheme://host[:port], allowed to call
	// cross-origin ("*" allows any). A request with an Origin not in the list is refused with 403.
	AllowedOrigins []string
	// AllowCredentials sends Access-Control-Allow-Credentials, for an identity kept in a cookie.
	// It needs explicit origins, not "*".
	AllowCredentials bool
	// POSTOnly refuses GET, so a page of another site cannot make the browser fetch credentials
	// with the user's cookies without a CORS check.
	POSTOnly bool
	// RefuseCrossSiteGET refuses a GET that the browser marks as sent by another site
	// (Sec-Fetch-Site: cross-site or same-site) without an Origin, such as an <img> tag carrying
	// the user's cookies: it would spend the user's rate limit.
	RefuseCrossSiteGET bool
	// KeepPort53 keeps URLs on port 53 in the answer. By default they are dropped: browsers block
	// port 53, and ICE gathering then hangs without trickle ICE, as Cloudflare notes.
	KeepPort53 bool

	// RatePerMinute and Burst limit each identity's requests (defaults 30 and 10), cached
	// answers included; over the limit the handler answers 429 with Retry-After. A negative
	// RatePerMinute turns the per-identity limit off.
	RatePerMinute float64
	Burst         int
	// MintsPerSecond and MintBurst are the handler-wide budget of upstream mints (defaults 50
	// and 100), however many identities ask: over it a new caller gets 503 with Retry-After.
	MintsPerSecond float64
	MintBurst      int
	// NetworkShare is the part of the mint budget, rate and burst, that the new identities
	// (callers with no cached credential) of one source network may take (default 0.25, above 0,
	// at most 1; 1 turns the share off), so that one network rotating identities cannot starve
	// new callers of the others. Returning callers are not counted against it.
	NetworkShare float64
	// SourceNetwork names the network a request comes from, for NetworkShare; "" exempts the
	// request. Default: without IdentityHeader, the remote address's /24 (IPv4) or /48 (IPv6),
	// the least a provider hands one customer; with IdentityHeader, none, since the remote
	// address is then your proxy's: return the client network your proxy reports, if it does.
	SourceNetwork func(*http.Request) string
	// MaxInFlight bounds concurrent upstream calls (default 16). Further mints wait for a slot in
	// arrival order, within RequestTimeout (then 503); cache hits never wait.
	MaxInFlight int
	// MaxIdentities bounds how many credentials the default store caches (default 10000).
	MaxIdentities int
	// MaxCallers bounds how many rate-limit buckets the default store keeps (default 100000).
	// Buckets outlive cache eviction; a bucket is forgotten only once refilled, so no eviction
	// resets a limit. When the table is full of active callers, new callers get 503.
	MaxCallers int
	// RequestTimeout bounds one request, the upstream call included (default 10s). Zero means
	// the default; there is no "no timeout".
	RequestTimeout time.Duration
	// RetryAfterMax caps the Retry-After sent to browsers and how long an upstream Retry-After
	// holds minting off (default 60s).
	RetryAfterMax time.Duration

	// Store holds the cache and the limits; default NewMemoryStore(MaxIdentities, MaxCallers).
	Store Store
	// Logger gets one warning per upstream failure, and stale answers and refusals sampled to
	// one line per reason per second with a count of the rest; records never hold credentials or
	// identities.
	Logger *slog.Logger
	// OnMint, when set, is called after each upstream call with its duration and its class
	// ("ok" or what Stats.UpstreamErrors counts), e.g. to feed a latency histogram.
	OnMint func(took time.Duration, class string)
	// WithholdTURN, when set, is asked on every request that passed the rate limit; when it
	// returns true nothing is minted from Cloudflare and the answer carries STUN servers only (no
	// TURN URL, no credential), or coturn's servers only when Coturn is set: a spend guard
	// (turnusage.Guard.OverBudget) stops Cloudflare TURN egress with it.
	WithholdTURN func(identity string) bool
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time

	// Coturn, when set, adds a self-hosted coturn (see NewCoturn) as a second provider, as
	// CoturnMode says: its servers beside Cloudflare's in every answer, or alone while Cloudflare
	// cannot be minted from. Its TTL must be at least TTL, so a cached answer never carries an
	// expired coturn credential.
	Coturn *Coturn
	// CoturnMode is CoturnMerge (the default) or CoturnFallback.
	CoturnMode CoturnMode
}

// Handler serves fresh ICE credentials to browsers: GET or POST answers
//
//	{"iceServers": [...], "expiresAt": <unix seconds>}
//
// ready for new RTCPeerConnection. It faces the open internet, so everything it does is bounded:
//
//   - Identities: each request is attributed to an identity (see Config.Identity) of at
//     most MaxIdentityBytes, stored only as a 16-byte digest, and nothing is stored for a request
//     that is refused.
//   - Cache: credentials are cached per identity, rendered once, until RefreshFraction of their
//     TTL has passed; a cache hit takes no handler-wide lock and never waits for a mint.
//   - Limits: a token bucket per identity (whose state outlives cache eviction), a handler-wide
//     mint budget that rotating identities or addresses cannot exceed, and a share of it per
//     source network for new identities, so one network cannot take it all.
//   - Upstream: one upstream attempt per mint (the client's retries are off inside the handler);
//     concurrent requests for one identity share it; after a failure no identity mints until the
//     upstream's Retry-After (or one second) has passed, and then one probe at a time; a mint
//     that waited for a slot asks again before it sends. A caller going away is never an upstream
//     failure. A refresh that fails serves the cached credential while it has MinRemaining left.
//     An answer without a usable TURN entry is a 502 and is not cached; what is cached per
//     identity is at most 4 KiB, unknown fields dropped beyond 512 bytes.
//   - Browsers: CORS with the identity header allowed, port-53 URLs dropped, Retry-After clamped.
//
// Answers: 400 no, repeated or oversized identity, or a CustomIdentifier value the client would
// refuse; 403 origin or authorisation refused; 405 method; 429 identity over its limit; 503 mint
// budget or network share spent, busy or failing upstream (all with Retry-After); 502 other
// upstream failures, unusable answers included. Error bodies are {"error": "..."} and never hold a secret.
//
// Its state lives in Config.Store, by default in this process: behind a load balancer
// without sticky sessions, each replica caches and limits on its own, so the limits apply per
// replica. It is safe for concurrent use.
type Handler struct {
	cfg          Config
	client       *turn.Client // cfg.Client without retries
	store        Store
	memory       *MemoryStore // the store when it is the default, for Stats
	callerLimit  Limit
	mintLimit    Limit
	shareLimit   Limit // per source network, for new identities; zero when off
	network      func(*http.Request) string
	fromHeader   bool // the identity is IdentityHeader's value
	slots        chan struct{}
	breaker      breaker
	anyOrigin    bool
	allowMethods []string
	allowHeaders []string

	mints, hits, stale, inFlight atomic.Int64
	fallbacks                    atomic.Int64 // answers served by coturn alone (CoturnFallback)
	fallingBack                  atomic.Bool  // the last answer was a fallback: logged once per spell
	refused                      [numRefusals]atomic.Int64
	refusalLog                   [numRefusals]logSample
	staleLog                     logSample
	homeserverLog                logSample
	upstreamErrs                 [numClasses]atomic.Int64
	stunOnly                     atomic.Pointer[[]byte] // the last mint's STUN servers, as JSON (withhold.go)
	withheld                     atomic.Int64

	probeMu sync.Mutex
	probing *probeRun // the readiness probe running now, or nil
}

// probeRun is one readiness probe; err is set before done is closed.
type probeRun struct {
	done chan struct{}
	err  error
}

// Stats counts what a Handler did.
type Stats struct {
	UpstreamCalls  int64            // upstream mint attempts
	CacheHits      int64            // answers served fresh from the cache
	StaleServes    int64            // cached answers served because a refresh failed
	InFlight       int64            // upstream calls now in flight
	Refused        map[string]int64 // refused requests by reason, e.g. "rate_limited"
	UpstreamErrors map[string]int64 // failed upstream calls by class, e.g. "rate_limited"
	Identities     int              // credentials cached (default store only)
	Callers        int              // rate-limit buckets kept (default store only)
	// CoturnFallbacks counts answers served by coturn alone because Cloudflare could not be
	// minted from (CoturnFallback).
	CoturnFallbacks int64
	// STUNOnly counts answers without Cloudflare's TURN because WithholdTURN said so.
	STUNOnly int64
}

// NewHandler checks cfg and returns a handler.
func NewHandler(cfg Config) (*Handler, error) {
	fromHeader := cfg.Identity == nil && cfg.IdentityHeader != ""
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	// One attempt per mint: inside the handler a retry would multiply upstream calls by the
	// client's retry count, while the handler's own answer (503 with Retry-After, or the cached
	// credential) already tells the browser what to do.
	client, err := cfg.Client.Clone(turn.WithRetry(0))
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:          cfg,
		client:       client,
		store:        cfg.Store,
		callerLimit:  Limit{PerSecond: cfg.RatePerMinute / 60, Burst: cfg.Burst},
		mintLimit:    Limit{PerSecond: cfg.MintsPerSecond, Burst: cfg.MintBurst},
		network:      cfg.SourceNetwork,
		fromHeader:   fromHeader,
		slots:        make(chan struct{}, cfg.MaxInFlight),
		allowMethods: []string{"GET, POST, OPTIONS"},
		allowHeaders: preflightHeaders(cfg.IdentityHeader),
	}
	if cfg.POSTOnly {
		h.allowMethods = []string{"POST, OPTIONS"}
	}
	h.anyOrigin = slices.Contains(cfg.AllowedOrigins, "*")
	if cfg.NetworkShare < 1 {
		h.shareLimit = Limit{PerSecond: cfg.MintsPerSecond * cfg.NetworkShare, Burst: max(1, int(math.Ceil(float64(cfg.MintBurst)*cfg.NetworkShare)))}
	}
	if h.store == nil {
		h.memory = NewMemoryStore(cfg.MaxIdentities, cfg.MaxCallers)
		h.store = h.memory
	}
	return h, nil
}

func (cfg *Config) setDefaults() error {
	const op = "iceserve.NewHandler"
	if cfg.Client == nil {
		return invalidArg(op, "Client is nil")
	}
	setDefault(&cfg.TTL, DefaultTTL)
	setDefault(&cfg.RefreshFraction, DefaultRefreshFraction)
	setDefault(&cfg.MinRemaining, cfg.TTL/4)
	setDefault(&cfg.MaxIdentityBytes, DefaultMaxIdentityBytes)
	setDefault(&cfg.RatePerMinute, DefaultRatePerMinute)
	setDefault(&cfg.Burst, DefaultBurst)
	setDefault(&cfg.MintsPerSecond, DefaultMintsPerSecond)
	setDefault(&cfg.MintBurst, DefaultMintBurst)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.MaxIdentities, DefaultMaxIdentities)
	setDefault(&cfg.MaxCallers, DefaultMaxCallers)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.RetryAfterMax, DefaultRetryAfterMax)
	setDefault(&cfg.NetworkShare, DefaultNetworkShare)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := (turn.GenerateICEServersParams{KeyID: cfg.KeyID, KeySecret: cfg.KeySecret, TTL: cfg.TTL}).Validate(); err != nil {
		return err
	}
	const big = 1_000_000
	switch {
	case cfg.TTL > turn.MaxICETTL:
		return invalidArg(op, "TTL %v is over Cloudflare's maximum of %v", cfg.TTL, turn.MaxICETTL)
	case !(cfg.RefreshFraction > 0 && cfg.RefreshFraction <= 1):
		return invalidArg(op, "RefreshFraction %v must be above 0 and at most 1, e.g. 0.5", cfg.RefreshFraction)
	case cfg.MinRemaining < 0 || cfg.MinRemaining >= cfg.TTL:
		return invalidArg(op, "MinRemaining %v must be at least 0 and below TTL %v", cfg.MinRemaining, cfg.TTL)
	case !(cfg.RatePerMinute < 0 && !math.IsInf(cfg.RatePerMinute, -1)) && !(cfg.RatePerMinute >= 0.1 && cfg.RatePerMinute <= big):
		return invalidArg(op, "RatePerMinute %v must be from 0.1 to %d, or negative to turn the limit off", cfg.RatePerMinute, big)
	case !(cfg.NetworkShare > 0 && cfg.NetworkShare <= 1):
		return invalidArg(op, "NetworkShare %v must be above 0 and at most 1, e.g. 0.25 (1 turns the share off)", cfg.NetworkShare)
	case !(cfg.MintsPerSecond >= 0.01 && cfg.MintsPerSecond <= big):
		return invalidArg(op, "MintsPerSecond %v must be from 0.01 to %d", cfg.MintsPerSecond, big)
	case cfg.Burst < 1 || cfg.Burst > big || cfg.MintBurst < 1 || cfg.MintBurst > big:
		return invalidArg(op, "Burst %d and MintBurst %d must be from 1 to %d", cfg.Burst, cfg.MintBurst, big)
	case cfg.MaxIdentityBytes < 1 || cfg.MaxInFlight < 1 || cfg.MaxIdentities < 1 || cfg.MaxCallers < 1:
		return invalidArg(op, "MaxIdentityBytes, MaxInFlight, MaxIdentities and MaxCallers must be positive")
	case cfg.RequestTimeout < 0 || cfg.RetryAfterMax < time.Second:
		return invalidArg(op, "RequestTimeout %v must not be negative and RetryAfterMax %v must be at least 1s", cfg.RequestTimeout, cfg.RetryAfterMax)
	case cfg.AllowCredentials && (len(cfg.AllowedOrigins) == 0 || slices.Contains(cfg.AllowedOrigins, "*")):
		return invalidArg(op, `AllowCredentials needs explicit AllowedOrigins, not none or "*": browsers refuse credentials with a wildcard`)
	}
	for _, o := range cfg.AllowedOrigins {
		if err := checkOrigin(op, o); err != nil {
			return err
		}
	}
	if err := cfg.checkCoturn(op); err != nil {
		return err
	}
	if cfg.SourceNetwork == nil && cfg.IdentityHeader == "" {
		cfg.SourceNetwork = remoteNetwork
	}
	if cfg.Identity == nil {
		if name := cfg.IdentityHeader; name != "" {
			cfg.Identity = func(r *http.Request) string { return r.Header.Get(name) }
		} else {
			cfg.Identity = remoteHost
		}
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	st := Stats{
		UpstreamCalls:  h.mints.Load(),
		CacheHits:      h.hits.Load(),
		StaleServes:    h.stale.Load(),
		STUNOnly:       h.withheld.Load(),
		InFlight:       h.inFlight.Load(),
		Refused:        make(map[string]int64, numRefusals),
		UpstreamErrors: make(map[string]int64, numClasses),
	}
	st.CoturnFallbacks = h.fallbacks.Load()
	for i := range h.refused {
		st.Refused[refusalNames[i]] = h.refused[i].Load()
	}
	for i := range h.upstreamErrs {
		st.UpstreamErrors[classNames[i]] = h.upstreamErrs[i].Load()
	}
	if h.memory != nil {
		st.Identities, st.Callers = h.memory.Credentials(), h.memory.Callers()
	}
	return st
}

// Ready returns nil unless the last upstream call failed, in which case the error names its class.
// Use it for a readiness probe. While failing, it tries the upstream itself once the handler's
// backoff has passed (through CheckUpstream), so a replica taken out of rotation for failing comes
// back without traffic. A caller that gives up early gets the last known state; its going away
// never counts as an upstream failure.
func (h *Handler) Ready(ctx context.Context) error {
	failing, _ := h.breaker.state()
	if !failing {
		return nil
	}
	if h.CheckUpstream(ctx) == nil {
		return nil
	}
	_, class := h.breaker.state()
	return fmt.Errorf("iceserve: upstream failing (%s)", class)
}

// Drop removes identity's cached credential so it is never served again; the next request mints
// a new one. With revoke, the credential is also revoked upstream, so TURN servers refuse it even
// to a client that kept it. To keep an identity out altogether, refuse it in Authorize.
func (h *Handler) Drop(ctx context.Context, identity string, revoke bool) error {
	if !revoke {
		return h.drop(ctx, identity, nil)
	}
	return h.drop(ctx, identity, h.revoke)
}

// drop removes identity's cached credential and, with revoke set, revokes it with revoke.
func (h *Handler) drop(ctx context.Context, identity string, revoke func(ctx context.Context, username string) error) error {
	c, err := h.store.DropCredential(ctx, identityKey(identity))
	if c == nil || revoke == nil || c.Username == "" {
		return err
	}
	// Revoke even when the store reported trouble: the credential it returned is known.
	return errors.Join(err, revoke(ctx, c.Username))
}

// revoke revokes a credential of the handler's key, with the caller's client and its retries.
func (h *Handler) revoke(ctx context.Context, username string) error {
	return h.cfg.Client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, Username: username})
}

// CheckUpstream mints one credential through the handler's limits, as a start-up check that the
// key and its secret work and the upstream is reachable, and revokes it, so the check leaves no
// credential that nobody uses. The check runs on a context of its own, bounded by RequestTimeout,
// and at most one runs at a time: concurrent callers share its outcome. When ctx ends first,
// CheckUpstream returns ctx's error and the check goes on for the others.
func (h *Handler) CheckUpstream(ctx context.Context) error {
	h.probeMu.Lock()
	run := h.probing
	if run == nil {
		run = &probeRun{done: make(chan struct{})}
		h.probing = run
		go func() {
			run.err = h.probe()
			h.probeMu.Lock()
			h.probing = nil
			h.probeMu.Unlock()
			close(run.done)
		}()
	}
	h.probeMu.Unlock()
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probe is one upstream check, detached from whoever asked for it.
func (h *Handler) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.RequestTimeout)
	defer cancel()
	c, err := h.send(ctx, "", "")
	if err != nil {
		return err
	}
	if c.Username != "" {
		// Best effort, on the probe's own time: the check itself succeeded.
		if err := h.client.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, Username: c.Username}); err != nil {
			h.log(ctx, slog.LevelInfo, "iceserve: revoking the check's credential failed", "class", errorClass(err))
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	if !h.cors(w, r) {
		h.refuse(w, r, refusedOrigin, http.StatusForbidden, "origin not allowed", 0)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	case http.MethodGet:
		if !h.cfg.POSTOnly {
			break
		}
		fallthrough
	default:
		hdr["Allow"] = h.allowMethods
		h.refuse(w, r, refusedMethod, http.StatusMethodNotAllowed, "use "+h.allowMethods[0], 0)
		return
	}
	if h.cfg.RefuseCrossSiteGET && crossSiteGET(r) {
		h.refuse(w, r, refusedCrossSite, http.StatusForbidden, "cross-site GET refused; use fetch with CORS", 0)
		return
	}
	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r); err != nil {
			h.refuse(w, r, refusedUnauthorized, http.StatusForbidden, "not authorised", 0)
			return
		}
	}
	if h.fromHeader {
		if n := len(r.Header.Values(h.cfg.IdentityHeader)); n > 1 {
			h.refuse(w, r, refusedIdentityRepeated, http.StatusBadRequest, "identity header "+http.CanonicalHeaderKey(h.cfg.IdentityHeader)+" sent "+strconv.Itoa(n)+" times; the proxy must replace it, not append", 0)
			return
		}
	}
	id := h.cfg.Identity(r)
	switch {
	case id == "" && h.fromHeader:
		h.refuse(w, r, refusedNoIdentity, http.StatusBadRequest, "no caller identity: the "+http.CanonicalHeaderKey(h.cfg.IdentityHeader)+
			" header is missing or empty; the authenticating proxy in front of this server must set it", 0)
		return
	case id == "":
		h.refuse(w, r, refusedNoIdentity, http.StatusBadRequest, "no caller identity", 0)
		return
	case len(id) > h.cfg.MaxIdentityBytes:
		h.refuse(w, r, refusedIdentityTooLong, http.StatusBadRequest, "caller identity over "+strconv.Itoa(h.cfg.MaxIdentityBytes)+" bytes", 0)
		return
	case strings.HasPrefix(id, reservedIdentityStart):
		h.refuse(w, r, refusedBadRequest, http.StatusBadRequest, "caller identity starts with a NUL byte, which is reserved", 0)
		return
	}
	var m mintRequest
	if h.cfg.CustomIdentifier != nil {
		// Checked here, with the client's rule: a value the client would refuse is this request's
		// problem, not the upstream's, and must not reach the breaker, the budget or the counters.
		m.tag = h.cfg.CustomIdentifier(id)
		if err := (turn.GenerateICEServersParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, TTL: h.cfg.TTL, CustomIdentifier: m.tag}).Validate(); err != nil {
			h.refuse(w, r, refusedBadCustomIdentifier, http.StatusBadRequest, "no valid customIdentifier for this caller", 0)
			return
		}
	}
	if h.network != nil && h.shareLimit.PerSecond > 0 {
		m.network = h.network(r) // hashed only when a mint needs it
	}
	h.answer(w, r, id, m)
}

var (
	noStore  = []string{"no-store"}
	jsonType = []string{"application/json"}
)

// answer serves id's credential: from the cache when fresh, else from one shared mint, else the
// cached one while it has MinRemaining left.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, id string, m mintRequest) {
	ctx := r.Context()
	key := identityKey(id)
	now := h.cfg.Now()
	m.identity = id
	limited := h.cfg.RatePerMinute >= 0
	if limited {
		wait, err := h.store.Allow(ctx, key, h.callerLimit, now)
		switch {
		case errors.Is(err, ErrStoreFull):
			h.refuse(w, r, refusedTooManyCallers, http.StatusServiceUnavailable, "too many callers, retry shortly", time.Second)
			return
		case err != nil:
			h.storeFailed(w, r, err)
			return
		case wait > 0:
			h.refuse(w, r, refusedRateLimited, http.StatusTooManyRequests, "rate limited", wait)
			return
		}
	}
	if h.cfg.WithholdTURN != nil && h.cfg.WithholdTURN(id) {
		h.writeWithheld(w, id, now)
		return
	}
	cached, err := h.store.Credential(ctx, key)
	if err != nil {
		h.storeFailed(w, r, err)
		return
	}
	if cached != nil && now.Before(cached.FreshUntil) {
		h.hits.Add(1)
		h.write(w, cached.Body)
		return
	}

	waitCtx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	m.isNew = cached == nil
	c, err := h.store.Flight(waitCtx, key, func() (*Credential, error) { return h.mint(key, m) })
	cancel()
	if err == nil {
		h.write(w, c.Body)
		return
	}
	if ctx.Err() != nil {
		// The browser went away; the mint, if any, goes on for the next request.
		h.count(refusedClientGone)
		h.log(ctx, slog.LevelDebug, "iceserve: client went away", slog.String("reason", "client_gone"))
		return
	}
	// Serve the cached credential while it has enough life left, unless it was dropped meanwhile.
	if cached != nil {
		if still, _ := h.store.Credential(ctx, key); still != nil && still.Sent.Equal(cached.Sent) && still.Username == cached.Username &&
			cached.Expires.Sub(h.cfg.Now()) >= h.cfg.MinRemaining {
			h.stale.Add(1)
			if unlogged, ok := h.staleLog.take(h.cfg.Now()); ok && h.cfg.Logger != nil {
				h.log(ctx, slog.LevelWarn, "iceserve: refresh failed, serving the cached credential",
					slog.String("class", h.classify(err)), slog.Time("expires", cached.Expires), slog.Int64("unlogged_since", unlogged))
			}
			h.write(w, cached.Body)
			return
		}
	}
	if h.fallback(w, r, id, err) {
		return
	}
	if limited && cached == nil {
		// Nothing is remembered for a new caller that was refused.
		h.store.Refund(ctx, key, h.callerLimit, now)
	}
	h.failed(w, r, err)
}

func (h *Handler) write(w http.ResponseWriter, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonType
	w.Write(body)
}

// networkKey is the store key of a source network, apart from every identity's.
func networkKey(network string) string { return identityKey("\x00source network\x00" + network) }

// remoteNetwork is the remote address's /24 (IPv4) or /48 (IPv6): the least a provider commonly
// hands one customer, so one customer's addresses count as one network.
func remoteNetwork(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return networkOf(ip)
}

func networkOf(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// NetworkFromHeader returns a Config.SourceNetwork for a handler behind a proxy that puts the
// client's address in the named header (e.g. X-Real-IP): the address's /24 (IPv4) or /48 (IPv6).
// A request without exactly one such header, or whose value is not an IP address, names no
// network and is exempt from the share. Use it only with a header your proxy overwrites.
func NetworkFromHeader(name string) func(*http.Request) string {
	key := http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		vs := r.Header[key]
		if len(vs) != 1 {
			return ""
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(vs[0]))
		if err != nil {
			return ""
		}
		return networkOf(ip)
	}
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	// An IPv6 client commonly holds a whole /64 and can pick a new address per request: the
	// /64 is one caller.
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return host
}

// invalidArg reports a configuration the handler refuses, as the client reports its own: it
// matches turn.ErrInvalidArgument.
func invalidArg(op, format string, args ...any) error {
	return turn.InvalidArgument(op, fmt.Sprintf(format, args...))
}
