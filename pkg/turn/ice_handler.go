package turn

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ICEHandlerConfig configures an ICEHandler. Zero fields take the documented defaults.
type ICEHandlerConfig struct {
	Client    *Client // required
	KeyID     string  // required: the TURN key's uid
	KeySecret Secret  // required: the TURN key's secret

	// TTL is the lifetime of minted credentials (default 24h).
	TTL time.Duration
	// RefreshFraction is the part of TTL after which a cached credential is replaced by a fresh
	// one (default 0.5): a caller never gets a credential with less than half its life left.
	RefreshFraction float64

	// Identity names the caller that credentials are minted and cached for (default: the remote
	// address's host). Use a header or cookie set by your authentication in front of the handler.
	Identity func(*http.Request) string
	// Authorize, when set, runs before anything is minted; a non-nil error answers 403.
	Authorize func(*http.Request) error
	// AllowedOrigins lists the browser origins allowed to call cross-origin ("*" allows any).
	// A request with an Origin header not in the list is refused with 403.
	AllowedOrigins []string

	// RatePerMinute and Burst limit each identity's requests (defaults 30 and 10); over the limit
	// the handler answers 429 with Retry-After. Cached answers count too. A negative
	// RatePerMinute turns the limit off.
	RatePerMinute float64
	Burst         int
	// MaxInFlight bounds concurrent upstream calls across all identities (default 16).
	MaxInFlight int
	// MaxIdentities bounds how many identities are remembered, least recently used first out
	// (default 10000), so memory stays flat however many callers come.
	MaxIdentities int
	// RequestTimeout bounds one request, the upstream call included (default 10s).
	RequestTimeout time.Duration
	// Logger gets one record per upstream failure; it never receives credentials.
	Logger *slog.Logger
}

// ICEHandler serves fresh ICE credentials to browsers: GET or POST answers
//
//	{"iceServers": [...], "expiresAt": <unix seconds>}
//
// ready for new RTCPeerConnection. Credentials are minted per caller identity and cached until
// RefreshFraction of their TTL has passed, so a reconnecting caller costs no upstream call;
// concurrent requests for one identity share one upstream call; upstream calls in flight and each
// identity's request rate are bounded. Upstream failures answer 502 or 503 with a JSON error that
// never holds a secret.
//
// The handler keeps no state but its cache, so any number of replicas can run behind a load
// balancer; each replica simply mints for the callers it sees. It is safe for concurrent use.
type ICEHandler struct {
	cfg      ICEHandlerConfig
	inFlight chan struct{}

	mu      sync.Mutex
	lru     *list.List // of *identityState, most recent first
	byID    map[string]*list.Element
	flights map[string]*flight

	upstream atomic.Int64
	hits     atomic.Int64
}

type identityState struct {
	id         string
	tokens     float64
	refilled   time.Time
	ice        *ICEServers
	freshUntil time.Time
}

type flight struct {
	done chan struct{}
	ice  *ICEServers
	err  error
}

// ICEHandlerStats counts what an ICEHandler did.
type ICEHandlerStats struct {
	UpstreamCalls int64 // credentials minted from Cloudflare
	CacheHits     int64 // answers served from the cache
	Identities    int   // identities currently remembered
}

// NewICEHandler checks cfg and returns a handler.
func NewICEHandler(cfg ICEHandlerConfig) (*ICEHandler, error) {
	const op = "ICE handler"
	if cfg.Client == nil {
		return nil, invalidArg(op, "Client is nil")
	}
	if err := checkICE(&operation{name: op}, cfg.KeyID, cfg.KeySecret); err != nil {
		return nil, err
	}
	setDefault(&cfg.TTL, 24*time.Hour)
	setDefault(&cfg.RefreshFraction, 0.5)
	setDefault(&cfg.RatePerMinute, 30)
	setDefault(&cfg.Burst, 10)
	setDefault(&cfg.MaxInFlight, 16)
	setDefault(&cfg.MaxIdentities, 10000)
	setDefault(&cfg.RequestTimeout, 10*time.Second)
	switch {
	case checkTTL(op, cfg.TTL) != nil:
		return nil, checkTTL(op, cfg.TTL)
	case cfg.RefreshFraction < 0 || cfg.RefreshFraction > 1:
		return nil, invalidArg(op, "RefreshFraction %v must be between 0 and 1", cfg.RefreshFraction)
	case cfg.Burst < 0 || cfg.MaxInFlight < 0 || cfg.MaxIdentities < 0 || cfg.RequestTimeout < 0:
		return nil, invalidArg(op, "limits must not be negative")
	}
	if cfg.Identity == nil {
		cfg.Identity = remoteHost
	}
	return &ICEHandler{
		cfg:      cfg,
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		lru:      list.New(),
		byID:     make(map[string]*list.Element),
		flights:  make(map[string]*flight),
	}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Stats returns the handler's counters.
func (h *ICEHandler) Stats() ICEHandlerStats {
	h.mu.Lock()
	n := h.lru.Len()
	h.mu.Unlock()
	return ICEHandlerStats{UpstreamCalls: h.upstream.Load(), CacheHits: h.hits.Load(), Identities: n}
}

// ServeHTTP implements http.Handler.
func (h *ICEHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !h.cors(w, r) {
		writeJSONError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		writeJSONError(w, http.StatusMethodNotAllowed, "use GET or POST")
		return
	}
	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r); err != nil {
			writeJSONError(w, http.StatusForbidden, "not authorised")
			return
		}
	}
	id := h.cfg.Identity(r)
	if id == "" {
		writeJSONError(w, http.StatusBadRequest, "no caller identity")
		return
	}
	ice, wait, err := h.credentials(r.Context(), id)
	switch {
	case wait > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeJSONError(w, http.StatusTooManyRequests, "rate limited")
		return
	case err != nil:
		h.upstreamError(w, r, err)
		return
	}
	out := *ice
	out.extra = maps.Clone(ice.extra)
	if out.extra == nil {
		out.extra = make(map[string]json.RawMessage, 1)
	}
	out.extra["expiresAt"] = strconv.AppendInt(nil, ice.Expires.Unix(), 10)
	body, err := json.Marshal(out)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// credentials returns a fresh-enough credential for id, or how long id must wait.
func (h *ICEHandler) credentials(ctx context.Context, id string) (*ICEServers, time.Duration, error) {
	now := time.Now()
	h.mu.Lock()
	st := h.touch(id, now)
	if wait := h.take(st, now); wait > 0 {
		h.mu.Unlock()
		return nil, wait, nil
	}
	if st.ice != nil && now.Before(st.freshUntil) {
		ice := st.ice
		h.mu.Unlock()
		h.hits.Add(1)
		return ice, 0, nil
	}
	f, joined := h.flights[id]
	if !joined {
		f = &flight{done: make(chan struct{})}
		h.flights[id] = f
	}
	h.mu.Unlock()

	if !joined {
		// The upstream call is shared, so one caller's cancellation must not fail the others.
		go h.mint(context.WithoutCancel(ctx), id, f)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	select {
	case <-f.done:
		return f.ice, 0, f.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// mint performs one upstream call for id and publishes it to the flight and the cache.
func (h *ICEHandler) mint(ctx context.Context, id string, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	select {
	case h.inFlight <- struct{}{}:
		h.upstream.Add(1)
		ice, err := h.cfg.Client.GenerateICEServers(ctx, GenerateICEServersParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, TTL: h.cfg.TTL})
		<-h.inFlight
		if err == nil {
			f.ice = &ice
		}
		f.err = err
	case <-ctx.Done():
		f.err = errBusy
	}
	h.mu.Lock()
	delete(h.flights, id)
	if f.err == nil {
		if el, ok := h.byID[id]; ok {
			st := el.Value.(*identityState)
			st.ice = f.ice
			st.freshUntil = time.Now().Add(time.Duration(float64(h.cfg.TTL) * h.cfg.RefreshFraction))
		}
	}
	h.mu.Unlock()
	close(f.done)
}

var errBusy = errors.New("too many upstream calls in flight")

// touch returns id's state, most recently used, evicting the least recently used beyond the bound.
func (h *ICEHandler) touch(id string, now time.Time) *identityState {
	if el, ok := h.byID[id]; ok {
		h.lru.MoveToFront(el)
		return el.Value.(*identityState)
	}
	st := &identityState{id: id, tokens: float64(h.cfg.Burst), refilled: now}
	h.byID[id] = h.lru.PushFront(st)
	for h.lru.Len() > h.cfg.MaxIdentities {
		old := h.lru.Back()
		h.lru.Remove(old)
		delete(h.byID, old.Value.(*identityState).id)
	}
	return st
}

// take spends one request from st's token bucket, or says how long until one is available.
func (h *ICEHandler) take(st *identityState, now time.Time) time.Duration {
	if h.cfg.RatePerMinute < 0 {
		return 0
	}
	perSec := h.cfg.RatePerMinute / 60
	st.tokens = min(float64(h.cfg.Burst), st.tokens+now.Sub(st.refilled).Seconds()*perSec)
	st.refilled = now
	if st.tokens >= 1 {
		st.tokens--
		return 0
	}
	return time.Duration((1 - st.tokens) / perSec * float64(time.Second))
}

// cors sets CORS headers for an allowed origin and reports whether the request may proceed.
func (h *ICEHandler) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	w.Header().Add("Vary", "Origin")
	if !slices.Contains(h.cfg.AllowedOrigins, origin) && !slices.Contains(h.cfg.AllowedOrigins, "*") {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	return true
}

// upstreamError answers a failed mint: 503 when Cloudflare or this handler is saturated, 502
// otherwise. Our errors never hold credentials, but only the class is sent to the browser.
func (h *ICEHandler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if h.cfg.Logger != nil {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "turn: ICE handler upstream failure", slog.String("error", err.Error()))
	}
	var apiErr *APIError
	switch {
	case errors.Is(err, errBusy), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "upstream busy, retry shortly")
	case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode == http.StatusServiceUnavailable):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(apiErr.RetryAfter.Seconds()))))
		writeJSONError(w, http.StatusServiceUnavailable, "upstream rate limited, retry shortly")
	default:
		writeJSONError(w, http.StatusBadGateway, fmt.Sprintf("upstream failed: %s", errorClass(err)))
	}
}

// errorClass names an error's class without its text.
func errorClass(err error) string {
	for _, c := range []error{ErrUnauthorized, ErrForbidden, ErrNotFound, ErrBadRequest, ErrServer, ErrUnexpectedResponse, ErrInvalidArgument} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return "transport error"
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
