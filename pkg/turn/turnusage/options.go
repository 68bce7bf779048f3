package turnusage

import (
	"fmt"
	"time"
)

// Option configures a Client. Options validate their arguments: NewClient reports the first error.
// Everything about how queries are sent (token, account, base URL, HTTP client, logger, retries,
// timeouts) is the turn.Client's: configure it with turn's options.
type Option func(*config) error

type config struct {
	limits *Limits
}

// WithLimits sets the dataset's limits instead of reading them from the settings node: one query
// fewer, but a range or page over the real limits then fails.
func WithLimits(l Limits) Option {
	return func(c *config) error {
		if l.MaxDuration < time.Minute || l.MaxPageSize < 1 {
			return fmt.Errorf("turnusage: WithLimits: need MaxDuration of a minute or more and MaxPageSize of 1 or more, got %v and %d", l.MaxDuration, l.MaxPageSize)
		}
		c.limits = &l
		return nil
	}
}
