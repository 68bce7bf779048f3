package turnrelay

import "time"

// WithAllocationLifetime sets the lifetime the relay grants an allocation that asks for none
// (default 10 minutes), the time within which a client must refresh it. With a few seconds, a
// test sees an expired credential's allocation end within seconds: its refreshes are refused.
// Browsers ask for no lifetime and refresh at half of a short one. d <= 0 means the default;
// pion grants a client's explicit request of up to an hour whatever d is.
func WithAllocationLifetime(d time.Duration) Option {
	return func(c *config) { c.lifetime = max(d, 0) }
}
