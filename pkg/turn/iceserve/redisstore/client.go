package redisstore

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewClient returns a Redis client for url (redis://[user:password@]host:port/db, or rediss://
// for TLS, as redis.ParseURL reads it) set up for a Store: operations bounded by their context,
// so by Options.Timeout (the client's own retries, which replace connections broken by a Redis
// restart, happen inside that bound). Each dial is tried once per attempt, so a Redis that
// refuses connections is reported as refused rather than as a timeout. Replies are bounded
// (lines 64 KiB, bulk strings 8 MiB, arrays 65536 elements): a connection whose server announces
// more is closed, where the client would otherwise allocate whatever size it is told. configure, when given, adjusts the options before the
// client is made, e.g. to trust a private CA. Errors never quote the URL, which may hold a
// password.
func NewClient(url string, configure ...func(*redis.Options) error) (*redis.Client, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: the Redis URL is not valid (want redis://[user:password@]host:port/db or rediss://...)%s", urlHint(url))
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout = min(o.DialTimeout, time.Second)
	// The pool's own dial retries outlast a short context, which then hides the dial error
	// ("connection refused") behind "context deadline exceeded"; the command retries remain.
	o.DialerRetries = 1
	for _, f := range configure {
		if err := f(o); err != nil {
			return nil, err
		}
	}
	guard(o)
	return redis.NewClient(o), nil
}

// TrustCA makes a rediss:// client trust the PEM certificates in caFile besides the system's.
func TrustCA(caFile string) func(*redis.Options) error {
	return func(o *redis.Options) error {
		if o.TLSConfig == nil {
			return fmt.Errorf("redisstore: a CA file is for TLS: use a rediss:// URL")
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("redisstore: reading the CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("redisstore: %s holds no PEM certificate", caFile)
		}
		o.TLSConfig.RootCAs = pool
		return nil
	}
}

// urlHint names what is wrong with a Redis URL that does not parse, without quoting any of it:
// the parser's own message quotes the URL, password included.
func urlHint(url string) string {
	switch {
	case strings.TrimSpace(url) != url:
		return ": it starts or ends with white space or a newline (read from a file? trim it)"
	case strings.ContainsFunc(url, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return ": it holds a control character"
	case !strings.HasPrefix(url, "redis://") && !strings.HasPrefix(url, "rediss://") && !strings.HasPrefix(url, "unix://"):
		return ": it must start with redis://, rediss:// or unix://"
	}
	return ": check the host, the port and that special characters in the password are percent-encoded"
}
