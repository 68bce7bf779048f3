package turn

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryRule says which failures of an operation may be retried.
type retryRule int

const (
	// retryIdempotent: GET, PUT, DELETE and the ICE calls, where a repeat does no harm: retried on
	// 429, 5xx and transport errors.
	retryIdempotent retryRule = iota
	// retryUnsent: create, whose secret is shown only once. Retried only when the request surely
	// never reached the server or was refused unprocessed: a connection or DNS failure, 429, or 503
	// with Retry-After. Never after a timeout or a reset mid-request, never on 500, 502 or 504:
	// the key may exist, and a retry would leave an orphan whose secret nobody saw.
	retryUnsent
)

// retryDelay decides whether attempt may be followed by another, and after how long. retry says
// the operation's rule allows it for the attempt's failure; retryAfter is the answer's Retry-After
// (0: none), honoured up to WithRetryAfterMax in place of the backoff.
func (c *Client) retryDelay(ctx context.Context, attempt int, retry bool, retryAfter time.Duration) (time.Duration, bool) {
	if attempt > c.cfg.maxRetries || ctx.Err() != nil || !retry {
		return 0, false
	}
	var wait time.Duration
	if retryAfter > 0 {
		if retryAfter > c.cfg.retryAfterMax {
			return 0, false
		}
		wait = retryAfter
	} else {
		ceiling := c.cfg.backoffBase << min(attempt-1, 30)
		if ceiling > c.cfg.backoffMax || ceiling <= 0 {
			ceiling = c.cfg.backoffMax
		}
		wait = rand.N(ceiling + 1)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// retryable applies the operation's rule to one failure.
func retryable(rule retryRule, err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return retryableAnswer(rule, apiErr.StatusCode == http.StatusTooManyRequests, apiErr.StatusCode >= 500, apiErr.StatusCode, apiErr.RetryAfter)
	}
	return notSent(err) || rule == retryIdempotent
}

// retryableAnswer applies the rule to a failure the server answered, as the client or Do's check
// classed it: a rate limit is always retried (the request was refused unprocessed), a server
// failure by an idempotent rule, or by any when it was a 503 with Retry-After (refused
// unprocessed too).
func retryableAnswer(rule retryRule, rateLimited, serverFailed bool, status int, retryAfter time.Duration) bool {
	switch {
	case rateLimited:
		return true
	case serverFailed:
		return rule == retryIdempotent || status == http.StatusServiceUnavailable && retryAfter > 0
	}
	return false
}

// notSent reports whether a transport error happened before the request could reach a server:
// the connection was never made.
func notSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date. It returns 0 when the
// header is absent, malformed or in the past.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
