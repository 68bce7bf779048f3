package turnusage

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Option configures a Client. Options validate their arguments: NewClient reports the first error.
type Option func(*config) error

type config struct {
	token     turn.Secret
	tokenSet  bool
	accountID string
	apiBase   string // without the trailing slash
	hc        *http.Client
	logger    *slog.Logger
	getenv    func(string) string
	limits    *Limits

	maxRetries    int
	backoffBase   time.Duration
	backoffMax    time.Duration
	retryAfterMax time.Duration
	timeout       time.Duration
	maxBody       int64
}

func defaults() config {
	return config{
		apiBase:       turn.DefaultAPIBaseURL,
		getenv:        os.Getenv,
		maxRetries:    turn.DefaultMaxRetries,
		backoffBase:   turn.DefaultBackoffBase,
		backoffMax:    turn.DefaultBackoffMax,
		retryAfterMax: turn.DefaultRetryAfterMax,
		timeout:       turn.DefaultAttemptTimeout,
		maxBody:       turn.DefaultMaxResponseBytes,
	}
}

// check applies turn's own validation of an option's value, so both packages accept and refuse
// the same tokens, account IDs and URLs with the same words.
func check(opt turn.Option) error {
	_, err := turn.NewClient(turn.WithGetenv(nil), opt)
	return err
}

// WithAPIToken sets the API token. It needs "Account Analytics Read" on the account.
func WithAPIToken(token string) Option {
	return func(c *config) error {
		if err := check(turn.WithAPIToken(token)); err != nil {
			return err
		}
		c.token, c.tokenSet = turn.NewSecret(token), true
		return nil
	}
}

// WithAccountID sets the account whose usage is read.
func WithAccountID(id string) Option {
	return func(c *config) error {
		if err := check(turn.WithAccountID(id)); err != nil {
			return err
		}
		c.accountID = id
		return nil
	}
}

// WithBaseURL sets the API root, e.g. https://api.cloudflare.com/client/v4 (the default) or a
// turntest server's APIBaseURL; queries go to its /graphql. The rules of turn.WithBaseURL apply.
func WithBaseURL(root string) Option {
	return func(c *config) error {
		if err := check(turn.WithBaseURL(root)); err != nil {
			return err
		}
		for len(root) > 0 && root[len(root)-1] == '/' {
			root = root[:len(root)-1]
		}
		c.apiBase = root
		return nil
	}
}

// WithHTTPClient sets the HTTP client. The Client uses a copy that refuses redirects to another
// host, so the Authorization header never leaves for one.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("turnusage: WithHTTPClient: client is nil")
		}
		c.hc = hc
		return nil
	}
}

// WithLogger sets a logger that gets one debug record per attempt (query, status, attempt,
// duration, cf-ray), never a credential or a body.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithRetry sets how many times a failed query is retried (turn.DefaultMaxRetries); 0 turns
// retries off.
func WithRetry(maxRetries int) Option {
	return func(c *config) error {
		if maxRetries < 0 {
			return fmt.Errorf("turnusage: WithRetry(%d): retries must be 0 (off) or more", maxRetries)
		}
		c.maxRetries = maxRetries
		return nil
	}
}

// WithBackoff sets the backoff between retries: attempt n waits a random time between 0 and
// min(max, base·2ⁿ), as turn.WithBackoff. A Retry-After header overrides it.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) error {
		if base <= 0 || max < base {
			return fmt.Errorf("turnusage: WithBackoff(%v, %v): need 0 < base <= max", base, max)
		}
		c.backoffBase, c.backoffMax = base, max
		return nil
	}
}

// WithRetryAfterMax caps how long a Retry-After header is honoured (turn.DefaultRetryAfterMax);
// a longer one ends the retries and returns the error.
func WithRetryAfterMax(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("turnusage: WithRetryAfterMax(%v): must not be negative", d)
		}
		c.retryAfterMax = d
		return nil
	}
}

// WithTimeout sets the per-attempt timeout used when the caller's context has no deadline
// (turn.DefaultAttemptTimeout); 0 means none.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("turnusage: WithTimeout(%v): must not be negative", d)
		}
		c.timeout = d
		return nil
	}
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

// WithGetenv sets where NewClient looks up CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID when no
// option gave them (os.Getenv); nil turns the fallback off.
func WithGetenv(getenv func(string) string) Option {
	return func(c *config) error {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		c.getenv = getenv
		return nil
	}
}
