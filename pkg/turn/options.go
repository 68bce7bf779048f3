package turn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults. A test checks that the documentation and the code agree.
const (
	DefaultAPIBaseURL       = "https://api.cloudflare.com/client/v4"
	DefaultICEBaseURL       = "https://rtc.live.cloudflare.com/v1"
	DefaultMaxRetries       = 3
	DefaultBackoffBase      = 250 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultRetryAfterMax    = 30 * time.Second
	DefaultAttemptTimeout   = 30 * time.Second
	DefaultMaxResponseBytes = 4 << 20
)

// Option configures a Client. Options validate their arguments: NewClient reports the first error.
type Option func(*config) error

type config struct {
	token     Secret
	tokenSet  bool
	accountID string
	apiBase   string // ends in "/", as the generated request builders need
	iceBase   string // ends in "/"
	iceGiven  bool   // WithICEBaseURL was given; see resolveICEBase
	hc        *http.Client
	userAgent string
	logger    *slog.Logger
	getenv    func(string) string

	maxRetries    int
	backoffBase   time.Duration
	backoffMax    time.Duration
	retryAfterMax time.Duration
	timeout       time.Duration
	maxBody       int64
}

// WithAPIToken sets the API token used for key management. Listing and getting keys need the
// "Calls Read" or "Calls Write" permission; creating, renaming and deleting keys need "Calls Write".
// A token with white space, control characters or other characters that are not printable ASCII
// is refused with ErrInvalidArgument.
func WithAPIToken(token string) Option {
	return func(c *config) error {
		return setToken(c, "WithAPIToken", token)
	}
}

func setToken(c *config, op, token string) error {
	if msg := credentialProblem("API token", token); msg != "" {
		return invalidArg(op, "%s", msg)
	}
	c.token, c.tokenSet = NewSecret(token), true
	return nil
}

// WithAccountID sets the account used when a call's AccountID is empty.
func WithAccountID(id string) Option {
	return func(c *config) error {
		if err := checkAccountID("WithAccountID", id); err != nil {
			return err
		}
		c.accountID = id
		return nil
	}
}

// WithBaseURL sets the key-management API root, e.g. https://api.cloudflare.com/client/v4 or a
// turntest server's /client/v4 URL. Operation paths are appended to it. It must be https, or http
// on a loopback host.
//
// The ICE credentials API root follows it unless WithICEBaseURL is given too (in either order): a
// root ending in /client/v4, as a turntest server, cfturn serve-fake or a proxy of both APIs has,
// puts the ICE API at the same server's /v1 (http://127.0.0.1:8787/client/v4 gives
// http://127.0.0.1:8787/v1). NewClient refuses any other root that is not DefaultAPIBaseURL
// without WithICEBaseURL, so that a test server's key ID and secret never go to Cloudflare and a
// test never mints real credentials. The CLI's --base-url and --ice-base-url follow the same rule.
func WithBaseURL(root string) Option {
	return func(c *config) (err error) {
		c.apiBase, err = checkBaseURL("WithBaseURL", root)
		return err
	}
}

// WithICEBaseURL sets the ICE credentials API root, e.g. https://rtc.live.cloudflare.com/v1 or a
// turntest server's /v1 URL. The same rules as WithBaseURL apply. Without it the ICE root is
// DefaultICEBaseURL, or derived from WithBaseURL's root as WithBaseURL describes.
func WithICEBaseURL(root string) Option {
	return func(c *config) (err error) {
		c.iceBase, err = checkBaseURL("WithICEBaseURL", root)
		c.iceGiven = err == nil
		return err
	}
}

// resolveICEBase applies WithBaseURL's rule for the ICE root once every option has been applied,
// so that the order of WithBaseURL and WithICEBaseURL does not matter.
func (c *config) resolveICEBase() error {
	if c.iceGiven || c.apiBase == DefaultAPIBaseURL+"/" {
		return nil
	}
	if server, ok := strings.CutSuffix(c.apiBase, "/client/v4/"); ok {
		c.iceBase = server + "/v1/"
		return nil
	}
	return fmt.Errorf("turn: WithBaseURL: %s does not end in /client/v4 (the key API root is e.g. %s, or a fake's http://127.0.0.1:8787/client/v4), so the ICE API's root cannot be derived from it: pass WithICEBaseURL too, so that ICE calls never go to Cloudflare with another server's key", describeURL(strings.TrimSuffix(c.apiBase, "/")), DefaultAPIBaseURL)
}

// WithHTTPClient sets the HTTP client. The Client uses a copy, so hc is not changed; the copy
// refuses redirects to another host, so the Authorization header never leaves for one.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("turn: WithHTTPClient: client is nil")
		}
		c.hc = hc
		return nil
	}
}

// WithUserAgent puts product in front of the User-Agent, which always names cfturn and its version.
func WithUserAgent(product string) Option {
	return func(c *config) error {
		if err := checkUserAgent("WithUserAgent", product); err != nil {
			return err
		}
		c.userAgent = strings.TrimSpace(product + " " + userAgent)
		return nil
	}
}

// WithLogger sets a logger that gets one debug record per attempt: operation, method, path template,
// status, attempt, duration and cf-ray. Records never hold credentials or bodies.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithRetry sets how many times a failed call is retried; 0 turns retries off.
// See the package documentation for which failures are retried.
func WithRetry(maxRetries int) Option {
	return func(c *config) error {
		if maxRetries < 0 {
			return fmt.Errorf("turn: WithRetry(%d): retries must be 0 (off) or more", maxRetries)
		}
		c.maxRetries = maxRetries
		return nil
	}
}

// WithBackoff sets the exponential backoff between retries: attempt n waits a random time between 0
// and min(max, base·2ⁿ) ("full jitter"). A Retry-After header overrides it.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) error {
		if base <= 0 || max < base {
			return fmt.Errorf("turn: WithBackoff(%v, %v): need 0 < base <= max", base, max)
		}
		c.backoffBase, c.backoffMax = base, max
		return nil
	}
}

// WithRetryAfterMax caps how long the client honours a Retry-After header. A longer one ends the
// retries and returns the error, so the caller can decide.
func WithRetryAfterMax(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("turn: WithRetryAfterMax(%v): must not be negative", d)
		}
		c.retryAfterMax = d
		return nil
	}
}

// WithTimeout sets the per-attempt timeout used when the caller's context has no deadline.
// 0 means no per-attempt timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("turn: WithTimeout(%v): must not be negative", d)
		}
		c.timeout = d
		return nil
	}
}

// WithMaxResponseBytes caps the size of a response body the client reads.
func WithMaxResponseBytes(n int64) Option {
	return func(c *config) error {
		if n < 1024 {
			return fmt.Errorf("turn: WithMaxResponseBytes(%d): must be at least 1024", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithGetenv sets where NewClient looks up CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID when no
// option gave them. The default is os.Getenv; nil turns the fallback off.
func WithGetenv(getenv func(string) string) Option {
	return func(c *config) error {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		c.getenv = getenv
		return nil
	}
}

// checkBaseURL returns root with a trailing slash, or an error that says what to fix. It never
// echoes user information from the URL.
func checkBaseURL(opt, root string) (string, error) {
	u, err := url.Parse(root)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("turn: %s: %s is not an absolute http(s) URL such as %s", opt, describeURL(root), DefaultAPIBaseURL)
	}
	if u.User != nil {
		return "", fmt.Errorf("turn: %s: %s carries user information; credentials go in WithAPIToken", opt, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("turn: %s: %s has a query or fragment; pass only the API root", opt, u.Redacted())
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("turn: %s: %s is plain http; use https (http is allowed only on loopback hosts such as 127.0.0.1)", opt, u.Redacted())
	}
	return strings.TrimSuffix(u.String(), "/") + "/", nil
}

// describeURL names a rejected base URL without echoing something that may be a credential passed
// by mistake (a run of 24 or more letters, digits, '-' or '_', as tokens and key secrets are), nor
// the user information of a URL.
func describeURL(s string) string {
	if credentialLike.MatchString(s) {
		if u, err := url.Parse(s); err == nil && strings.Contains(s, "://") && !credentialLike.MatchString(u.Redacted()) {
			return strconv.Quote(u.Redacted())
		}
		return fmt.Sprintf("a value of %d characters (not shown: it looks like a credential)", utf8.RuneCountInString(s))
	}
	if u, err := url.Parse(s); err == nil {
		return strconv.Quote(u.Redacted())
	}
	return strconv.Quote(s)
}

// credentialLike matches what may be a token or key secret.
var credentialLike = regexp.MustCompile(`[A-Za-z0-9_-]{24,}`)

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
