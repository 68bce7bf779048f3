package iceserve

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits of MatrixConfig. A test checks that the documentation and the code agree.
const (
	DefaultMatrixCacheTTL        = 30 * time.Second
	MaxMatrixCacheTTL            = 10 * time.Minute
	DefaultMatrixMaxCached       = 10_000
	DefaultMatrixTimeout         = 5 * time.Second
	DefaultMatrixMaxInFlight     = 16
	DefaultMatrixLookupsPerSec   = 50
	DefaultMatrixLookupBurst     = 100
	maxMatrixWhoamiBytes         = 16 << 10
	maxMatrixUserIDBytes         = 255 // the Matrix spec's limit
	maxMatrixTokenBytes          = 4096
	matrixWhoamiPath             = "/_matrix/client/v3/account/whoami"
	matrixUnavailableRetryAfter  = 5 * time.Second
	matrixRateLimitedRetryAfter  = time.Second
	matrixMaxHomeserverURLLength = 2048
)

// Errors of MatrixVerifier.Verify.
var (
	// ErrMatrixUnknownToken: the homeserver does not know the token (401), or none was given.
	// Matrix clients expect 401 {"errcode": "M_UNKNOWN_TOKEN"} for it.
	ErrMatrixUnknownToken = errors.New("matrix: unknown access token")
	// ErrMatrixForbidden: the homeserver refused the token's owner (403).
	ErrMatrixForbidden = errors.New("matrix: forbidden")
	// ErrMatrixUnavailable: the homeserver could not say (down, slow, busy, rate limiting, or an
	// answer that is not a whoami answer); answer 503. It wraps a *MatrixUnavailableError.
	ErrMatrixUnavailable = errors.New("matrix: homeserver unavailable")
)

// MatrixUnavailableError says why the homeserver could not verify a token, and when to retry.
type MatrixUnavailableError struct {
	Reason     string // e.g. "timeout", "status 502", "not a whoami answer", "busy"
	RetryAfter time.Duration
}

func (e *MatrixUnavailableError) Error() string {
	return "matrix: homeserver unavailable: " + e.Reason
}

// Is makes errors.Is(err, ErrMatrixUnavailable) true.
func (e *MatrixUnavailableError) Is(target error) bool { return target == ErrMatrixUnavailable }

func unavailable(reason string, retryAfter time.Duration) error {
	return &MatrixUnavailableError{Reason: reason, RetryAfter: retryAfter}
}

// MatrixConfig configures a MatrixVerifier. Zero fields take the documented defaults.
type MatrixConfig struct {
	// Homeserver is the homeserver's client-server API base URL, e.g. https://matrix.example.org
	// (required): tokens are checked at Homeserver + /_matrix/client/v3/account/whoami.
	Homeserver string
	// HTTPClient sends the whoami requests (default: a client of its own). Redirects are never
	// followed, whichever client: the token would go along.
	HTTPClient *http.Client
	// CacheTTL is how long a verified token is trusted without asking again (default 30s, at
	// most 10m): a token revoked at the homeserver keeps working here for at most CacheTTL.
	CacheTTL time.Duration
	// MaxCached bounds how many verified tokens are remembered (default 10000); past it the
	// oldest entries go first.
	MaxCached int
	// Timeout bounds one whoami call (default 5s).
	Timeout time.Duration
	// MaxInFlight bounds concurrent whoami calls (default 16); a caller that finds them all busy
	// is answered ErrMatrixUnavailable at once rather than queued.
	MaxInFlight int
	// LookupsPerSecond and LookupBurst bound whoami calls, whatever the tokens (defaults 50 and
	// 100): a flood of made-up tokens cannot hammer the homeserver.
	LookupsPerSecond float64
	LookupBurst      int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// MatrixVerifier tells who a Matrix access token belongs to by asking the homeserver
// (GET /_matrix/client/v3/account/whoami), caching verified tokens briefly. Tokens are kept only
// as SHA-256 digests; errors and logs never hold one. It is safe for concurrent use.
type MatrixVerifier struct {
	cfg    MatrixConfig
	whoami string
	client *http.Client
	slots  chan struct{}

	mu      sync.Mutex
	cache   map[[sha256.Size]byte]matrixEntry
	order   [][sha256.Size]byte // insertion order, for eviction
	flights map[[sha256.Size]byte]*matrixFlight
	tokens  float64 // lookup budget left
	filled  time.Time

	lookups, hits, unknown, failures atomic.Int64
}

type matrixEntry struct {
	userID string
	until  time.Time
}

type matrixFlight struct {
	done   chan struct{}
	userID string
	err    error
}

// MatrixStats counts what a MatrixVerifier did.
type MatrixStats struct {
	Lookups      int64 // whoami calls made
	CacheHits    int64 // tokens answered from the cache
	UnknownToken int64 // tokens the homeserver did not know
	Unavailable  int64 // lookups that failed: homeserver down, slow, busy or answering garbage
	Cached       int   // verified tokens remembered now
}

// NewMatrixVerifier checks cfg and returns a verifier.
func NewMatrixVerifier(cfg MatrixConfig) (*MatrixVerifier, error) {
	const op = "matrix"
	u, err := url.Parse(cfg.Homeserver)
	switch {
	case cfg.Homeserver == "":
		return nil, fmt.Errorf("%s: no homeserver URL; give its client API base, e.g. https://matrix.example.org", op)
	case len(cfg.Homeserver) > matrixMaxHomeserverURLLength || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%s: homeserver URL %q must be http(s)://host[:port][/path], without user, query or fragment", op, redactUserinfo(cfg.Homeserver))
	}
	setZero(&cfg.CacheTTL, DefaultMatrixCacheTTL)
	setZero(&cfg.MaxCached, DefaultMatrixMaxCached)
	setZero(&cfg.Timeout, DefaultMatrixTimeout)
	setZero(&cfg.MaxInFlight, DefaultMatrixMaxInFlight)
	setZero(&cfg.LookupsPerSecond, DefaultMatrixLookupsPerSec)
	setZero(&cfg.LookupBurst, DefaultMatrixLookupBurst)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.CacheTTL < 0 || cfg.CacheTTL > MaxMatrixCacheTTL:
		return nil, fmt.Errorf("%s: CacheTTL %v must be from 0 to %v", op, cfg.CacheTTL, MaxMatrixCacheTTL)
	case cfg.MaxCached < 1 || cfg.MaxInFlight < 1 || cfg.LookupBurst < 1:
		return nil, fmt.Errorf("%s: MaxCached, MaxInFlight and LookupBurst must be positive", op)
	case cfg.Timeout < 0 || cfg.Timeout > time.Minute:
		return nil, fmt.Errorf("%s: Timeout %v must be from 0 to 1m", op, cfg.Timeout)
	case !(cfg.LookupsPerSecond >= 0.01 && cfg.LookupsPerSecond <= 1e6):
		return nil, fmt.Errorf("%s: LookupsPerSecond %v must be from 0.01 to 1000000", op, cfg.LookupsPerSecond)
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.MaxInFlight,
		IdleConnTimeout:       90 * time.Second,
	}}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		client = &cp
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &MatrixVerifier{
		cfg:     cfg,
		whoami:  strings.TrimSuffix(u.String(), "/") + matrixWhoamiPath,
		client:  client,
		slots:   make(chan struct{}, cfg.MaxInFlight),
		cache:   make(map[[sha256.Size]byte]matrixEntry),
		flights: make(map[[sha256.Size]byte]*matrixFlight),
		tokens:  float64(cfg.LookupBurst),
		filled:  cfg.Now(),
	}, nil
}

func setZero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func redactUserinfo(raw string) string {
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "[REDACTED]@" + raw[i+1:]
		}
	}
	return raw
}

// Stats returns the verifier's counters.
func (v *MatrixVerifier) Stats() MatrixStats {
	v.mu.Lock()
	cached := len(v.cache)
	v.mu.Unlock()
	return MatrixStats{Lookups: v.lookups.Load(), CacheHits: v.hits.Load(), UnknownToken: v.unknown.Load(), Unavailable: v.failures.Load(), Cached: cached}
}

// MatrixAccessToken returns the access token of a Matrix client request: the Authorization
// bearer token, or the deprecated access_token query parameter.
func MatrixAccessToken(r *http.Request) string {
	if t, ok := bearerToken(r); ok {
		return t
	}
	return r.URL.Query().Get("access_token")
}

// Verify returns the Matrix user ID that token belongs to: from the cache while the token was
// verified less than CacheTTL ago, else from the homeserver, one call for concurrent requests
// with one token. Its errors are ErrMatrixUnknownToken, ErrMatrixForbidden or
// ErrMatrixUnavailable; a failure is never cached.
func (v *MatrixVerifier) Verify(ctx context.Context, token string) (string, error) {
	if token == "" || len(token) > maxMatrixTokenBytes || !printable(token) {
		v.unknown.Add(1)
		return "", ErrMatrixUnknownToken
	}
	key := sha256.Sum256([]byte(token))
	now := v.cfg.Now()
	v.mu.Lock()
	if e, ok := v.cache[key]; ok && now.Before(e.until) {
		v.mu.Unlock()
		v.hits.Add(1)
		return e.userID, nil
	}
	f, joined := v.flights[key]
	if !joined {
		if !v.takeLookup(now) {
			v.mu.Unlock()
			v.failures.Add(1)
			return "", unavailable("over the lookup budget", matrixRateLimitedRetryAfter)
		}
		f = &matrixFlight{done: make(chan struct{})}
		v.flights[key] = f
	}
	v.mu.Unlock()
	if !joined {
		// The lookup runs on its own context so that the first caller leaving does not fail the
		// others waiting for it.
		go v.lookup(key, token, f)
	}
	select {
	case <-f.done:
		return f.userID, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// takeLookup spends one unit of the lookup budget (a token bucket); v.mu is held.
func (v *MatrixVerifier) takeLookup(now time.Time) bool {
	if elapsed := now.Sub(v.filled); elapsed > 0 {
		v.tokens = min(float64(v.cfg.LookupBurst), v.tokens+elapsed.Seconds()*v.cfg.LookupsPerSecond)
		v.filled = now
	}
	if v.tokens < 1 {
		return false
	}
	v.tokens--
	return true
}

func (v *MatrixVerifier) lookup(key [sha256.Size]byte, token string, f *matrixFlight) {
	// The cache's bound runs from when the homeserver was asked, so a token revoked there
	// works here for at most CacheTTL after the revocation.
	asked := v.cfg.Now()
	f.userID, f.err = v.ask(token)
	v.mu.Lock()
	delete(v.flights, key)
	if f.err == nil && v.cfg.CacheTTL > 0 {
		v.remember(key, f.userID, asked.Add(v.cfg.CacheTTL))
	}
	v.mu.Unlock()
	switch {
	case errors.Is(f.err, ErrMatrixUnknownToken):
		v.unknown.Add(1)
	case f.err != nil:
		v.failures.Add(1)
	}
	close(f.done)
}

// remember caches a verified token, evicting the oldest entries past MaxCached; v.mu is held.
func (v *MatrixVerifier) remember(key [sha256.Size]byte, userID string, until time.Time) {
	if _, ok := v.cache[key]; !ok {
		v.order = append(v.order, key)
	}
	v.cache[key] = matrixEntry{userID: userID, until: until}
	for len(v.cache) > v.cfg.MaxCached && len(v.order) > 0 {
		delete(v.cache, v.order[0])
		v.order = v.order[1:]
	}
	// Compact the order once it holds twice the entries (keys replaced or dropped).
	if len(v.order) > 2*len(v.cache)+16 {
		kept := v.order[:0]
		seen := make(map[[sha256.Size]byte]bool, len(v.cache))
		for _, k := range v.order {
			if _, ok := v.cache[k]; ok && !seen[k] {
				seen[k] = true
				kept = append(kept, k)
			}
		}
		v.order = kept
	}
}

// Forget drops token from the cache, so its next use asks the homeserver.
func (v *MatrixVerifier) Forget(token string) {
	key := sha256.Sum256([]byte(token))
	v.mu.Lock()
	delete(v.cache, key)
	v.mu.Unlock()
}

// ask makes one whoami call, bounded by Timeout, MaxInFlight and the answer's size.
func (v *MatrixVerifier) ask(token string) (string, error) {
	select {
	case v.slots <- struct{}{}:
		defer func() { <-v.slots }()
	default:
		return "", unavailable("busy: every lookup slot in use", matrixRateLimitedRetryAfter)
	}
	v.lookups.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), v.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.whoami, nil)
	if err != nil {
		return "", unavailable("bad homeserver URL", matrixUnavailableRetryAfter)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		var ne net.Error
		if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
			return "", unavailable("timeout after "+v.cfg.Timeout.String(), matrixUnavailableRetryAfter)
		}
		return "", unavailable("unreachable", matrixUnavailableRetryAfter)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMatrixWhoamiBytes+1))
	var ne net.Error
	switch {
	case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
		return "", unavailable("timeout after "+v.cfg.Timeout.String(), matrixUnavailableRetryAfter)
	case err != nil:
		return "", unavailable("answer cut short", matrixUnavailableRetryAfter)
	case len(body) > maxMatrixWhoamiBytes:
		return "", unavailable("answer over "+strconv.Itoa(maxMatrixWhoamiBytes)+" bytes", matrixUnavailableRetryAfter)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return "", ErrMatrixUnknownToken
	case resp.StatusCode == http.StatusForbidden:
		return "", ErrMatrixForbidden
	case resp.StatusCode == http.StatusTooManyRequests:
		return "", unavailable("rate limited", retryAfterOf(resp, body))
	case resp.StatusCode != http.StatusOK:
		return "", unavailable("status "+strconv.Itoa(resp.StatusCode), matrixUnavailableRetryAfter)
	}
	var who struct {
		UserID *string `json:"user_id"`
	}
	if err := json.Unmarshal(body, &who); err != nil || who.UserID == nil || !validMatrixUserID(*who.UserID) {
		return "", unavailable("not a whoami answer", matrixUnavailableRetryAfter)
	}
	return *who.UserID, nil
}

// retryAfterOf reads a 429's Retry-After header or Matrix's retry_after_ms, capped at a minute.
func retryAfterOf(resp *http.Response, body []byte) time.Duration {
	d := matrixRateLimitedRetryAfter
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		d = time.Duration(s) * time.Second
	} else {
		var m struct {
			RetryAfterMs int64 `json:"retry_after_ms"`
		}
		if json.Unmarshal(body, &m) == nil && m.RetryAfterMs > 0 {
			d = time.Duration(m.RetryAfterMs) * time.Millisecond
		}
	}
	return min(d, time.Minute)
}

// validMatrixUserID checks the shape of a user ID: @localpart:server, at most 255 bytes, of
// printable ASCII (the spec's historical user IDs included), no space.
func validMatrixUserID(id string) bool {
	if len(id) < 4 || len(id) > maxMatrixUserIDBytes || id[0] != '@' {
		return false
	}
	local, server, ok := strings.Cut(id[1:], ":")
	if !ok || local == "" || server == "" {
		return false
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// MatrixError is Matrix's error body, {"errcode": "...", "error": "..."}.
type MatrixError struct {
	Errcode string `json:"errcode"`
	Error   string `json:"error"`
}

// MatrixRefusal maps a Verify error to the status and body a Matrix client expects: 401
// M_UNKNOWN_TOKEN, 403 M_FORBIDDEN, or 503 M_UNKNOWN (with how long to wait) when the homeserver
// cannot say.
func MatrixRefusal(err error) (status int, body MatrixError, retryAfter time.Duration) {
	var u *MatrixUnavailableError
	switch {
	case errors.Is(err, ErrMatrixUnknownToken):
		return http.StatusUnauthorized, MatrixError{"M_UNKNOWN_TOKEN", "Unknown access token"}, 0
	case errors.Is(err, ErrMatrixForbidden):
		return http.StatusForbidden, MatrixError{"M_FORBIDDEN", "The homeserver refused this user"}, 0
	case errors.As(err, &u):
		return http.StatusServiceUnavailable, MatrixError{"M_UNKNOWN", "The homeserver could not verify the access token; retry shortly"}, u.RetryAfter
	}
	return http.StatusServiceUnavailable, MatrixError{"M_UNKNOWN", "Could not verify the access token; retry shortly"}, time.Second
}
