package iceserve

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Reasons a request is refused, the label values of Stats.Refused.
const (
	refusedOrigin = iota
	refusedMethod
	refusedCrossSite
	refusedUnauthorized
	refusedNoIdentity
	refusedIdentityTooLong
	refusedRateLimited
	refusedTooManyCallers
	refusedMintBudget
	refusedUpstreamBusy
	refusedUpstreamDown
	refusedUpstreamError
	refusedStoreError
	refusedClientGone
	refusedIdentityRepeated
	refusedBadCustomIdentifier
	refusedNetworkShare
	refusedBadRequest     // TURN REST: malformed parameters
	refusedBadService     // TURN REST: service other than turn
	refusedMissingToken   // Matrix: no access token
	refusedUnknownToken   // Matrix: the homeserver does not know the token
	refusedForbidden      // Matrix: the homeserver refused the token's owner
	refusedHomeserverDown // Matrix: the homeserver could not say
	refusedNoTURNServer   // TURN REST and Matrix: an answer without a TURN credential
	numRefusals
)

var refusalNames = [numRefusals]string{
	"origin", "method", "cross_site", "unauthorized", "no_identity", "identity_too_long", "rate_limited",
	"too_many_callers", "mint_budget", "upstream_busy", "upstream_down", "upstream_error", "store_error", "client_gone",
	"identity_repeated", "bad_custom_identifier", "network_share",
	"bad_request", "bad_service", "missing_token", "unknown_token", "forbidden", "homeserver_unavailable", "no_turn_server",
}

func (h *Handler) count(reason int) { h.refused[reason].Add(1) }

func (h *Handler) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if h.cfg.Logger != nil {
		h.cfg.Logger.Log(ctx, level, msg, args...)
	}
}

// refuse answers a refused request and logs it: 4xx at info and 5xx at warn level, at most one
// line per reason per second with the number of refusals left unlogged since, because under
// attack there is one refusal per attacking request. The metrics count every one.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, reason, status int, msg string, retryAfter time.Duration) {
	h.count(reason)
	if h.cfg.Logger != nil {
		h.logRefusal(r.Context(), reason, status)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", h.retryAfter(retryAfter))
	}
	writeJSONError(w, status, msg)
}

func (h *Handler) logRefusal(ctx context.Context, reason, status int) {
	unlogged, ok := h.refusalLog[reason].take(h.cfg.Now())
	if !ok {
		return
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	h.cfg.Logger.Log(ctx, level, "iceserve: refused", "reason", refusalNames[reason], "status", status,
		"unlogged_since", unlogged)
}

// logSample limits a kind of log line to one per second.
type logSample struct{ last, suppressed atomic.Int64 }

// take reports whether a line may be logged at now, and how many were left unlogged since the
// last one; when not, it counts this one as unlogged.
func (s *logSample) take(at time.Time) (unlogged int64, ok bool) {
	now := at.UnixNano()
	last := s.last.Load()
	if now-last < int64(time.Second) || !s.last.CompareAndSwap(last, now) {
		s.suppressed.Add(1)
		return 0, false
	}
	return s.suppressed.Swap(0), true
}

// retryAfter renders d for browsers: whole seconds, at least 1, at most RetryAfterMax.
func (h *Handler) retryAfter(d time.Duration) string {
	secs := math.Ceil(min(d, h.cfg.RetryAfterMax).Seconds())
	return strconv.Itoa(max(1, int(secs)))
}

// failed answers a mint that did not produce a credential.
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, err error) {
	var budget errBudget
	var down errUpstreamDown
	var apiErr *turn.APIError
	switch {
	case errors.As(err, &budget) && budget.network:
		h.refuse(w, r, refusedNetworkShare, http.StatusServiceUnavailable, "too many new callers from your network, retry shortly", budget.wait)
	case errors.As(err, &budget):
		h.refuse(w, r, refusedMintBudget, http.StatusServiceUnavailable, "mint budget spent, retry shortly", budget.wait)
	case errors.Is(err, ErrStoreFull):
		h.refuse(w, r, refusedTooManyCallers, http.StatusServiceUnavailable, "too many callers, retry shortly", time.Second)
	case errors.Is(err, errBusy), errors.Is(err, ErrStoreBusy):
		h.refuse(w, r, refusedUpstreamBusy, http.StatusServiceUnavailable, "upstream busy, retry shortly", time.Second)
	case errors.As(err, &down):
		h.refuse(w, r, refusedUpstreamDown, http.StatusServiceUnavailable, "upstream unavailable, retry shortly", down.wait)
	case errors.Is(err, context.DeadlineExceeded):
		h.refuse(w, r, refusedUpstreamError, http.StatusServiceUnavailable, "upstream slow, retry shortly", time.Second)
	case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode == http.StatusServiceUnavailable):
		h.refuse(w, r, refusedUpstreamError, http.StatusServiceUnavailable, "upstream rate limited, retry shortly", max(time.Second, apiErr.RetryAfter))
	default:
		// Only the class reaches the browser; the log line was written by the mint.
		h.refuse(w, r, refusedUpstreamError, http.StatusBadGateway, "upstream failed: "+errorClass(err), 0)
	}
}

// storeFailed answers a request the store could not serve.
func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	h.log(r.Context(), slog.LevelWarn, "iceserve: store failed", "error", err.Error())
	h.refuse(w, r, refusedStoreError, http.StatusServiceUnavailable, "temporarily unavailable, retry shortly", time.Second)
}

// classify names why a mint did not produce a credential, for logs.
func (h *Handler) classify(err error) string {
	var budget errBudget
	var down errUpstreamDown
	switch {
	case errors.As(err, &budget) && budget.network:
		return "network_share"
	case errors.As(err, &budget):
		return "mint_budget"
	case errors.Is(err, errBusy):
		return "upstream_busy"
	case errors.As(err, &down):
		return "upstream_down"
	}
	return errorClass(err)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
