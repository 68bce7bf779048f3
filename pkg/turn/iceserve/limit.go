package iceserve

import (
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// bucket is a token bucket as a value: no goroutine, no clock of its own; callers pass the time,
// so tests drive it with an injected clock.
type bucket struct {
	tokens float64
	at     time.Time
	lim    Limit // the limit it was made with, so a table holding several limits sweeps each right
}

// refill brings the bucket up to now.
func (b *bucket) refill(lim Limit, now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(lim.Burst), b.tokens+elapsed.Seconds()*lim.PerSecond)
		b.at = now
	}
}

// take spends one token, or returns how long until one is available.
func (b *bucket) take(lim Limit, now time.Time) time.Duration {
	b.refill(lim, now)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	// The limits are checked at construction, so this is finite and at least a nanosecond.
	return max(time.Nanosecond, time.Duration(math.Ceil((1-b.tokens)/lim.PerSecond*float64(time.Second))))
}

func (b *bucket) refund(lim Limit, now time.Time) {
	b.refill(lim, now)
	b.tokens = min(float64(lim.Burst), b.tokens+1)
}

func (b *bucket) full(lim Limit, now time.Time) bool {
	b.refill(lim, now)
	return b.tokens >= float64(lim.Burst)
}

// breaker remembers a failing upstream for all callers: after a failure no mint is sent until
// the backoff (the upstream's Retry-After, clamped) has passed, and then only one probe at a time
// until one succeeds.
type breaker struct {
	mu        sync.Mutex
	failing   bool
	probing   bool
	downUntil time.Time
	lastClass string
}

// errUpstreamDown refuses a mint while the upstream is remembered as failing.
type errUpstreamDown struct{ wait time.Duration }

func (e errUpstreamDown) Error() string { return "upstream failing recently; not asking again yet" }

// check reports whether a mint may go on to wait for an upstream slot. It claims nothing: the
// probe is claimed by allow, once the mint holds a slot.
func (br *breaker) check(now time.Time) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	switch {
	case !br.failing:
		return nil
	case now.Before(br.downUntil):
		return errUpstreamDown{br.downUntil.Sub(now)}
	case br.probing:
		return errUpstreamDown{time.Second}
	}
	return nil
}

// allow reports whether a mint may be sent now, and when the upstream is failing and its backoff
// has passed, makes this mint the one probe. It runs once the mint holds an upstream slot, so
// mints that queued while the upstream was still answering are refused once it is not.
func (br *breaker) allow(now time.Time) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	switch {
	case !br.failing:
		return nil
	case now.Before(br.downUntil):
		return errUpstreamDown{br.downUntil.Sub(now)}
	case br.probing:
		return errUpstreamDown{time.Second}
	}
	br.probing = true
	return nil
}

// done records a mint's outcome; backoff is how long to hold off after a failure.
func (br *breaker) done(now time.Time, err error, backoff time.Duration) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.probing = false
	if err == nil {
		br.failing = false
		return
	}
	br.failing, br.lastClass = true, errorClass(err)
	br.downUntil = now.Add(backoff)
}

// state returns whether the upstream is failing and the class of the last failure.
func (br *breaker) state() (bool, string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.failing, br.lastClass
}

// upstreamBackoff is how long the handler holds off after err: the upstream's Retry-After on 429
// and 503, else one second; never less than a second nor more than ceiling.
func upstreamBackoff(err error, ceiling time.Duration) time.Duration {
	var apiErr *turn.APIError
	d := time.Second
	if errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode == http.StatusServiceUnavailable) && apiErr.RetryAfter > d {
		d = apiErr.RetryAfter
	}
	return min(d, ceiling)
}

// cancelProbe gives up a probe that was allowed but not sent.
func (br *breaker) cancelProbe() {
	br.mu.Lock()
	br.probing = false
	br.mu.Unlock()
}
