package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
)

// redisURLEnv names the environment variable serve-ice reads the Redis URL from, so that a
// password in it is not on the command line for ps to show.
const redisURLEnv = "CFTURN_REDIS_URL"

// sharedStore connects serve-ice to Redis when --redis-url or CFTURN_REDIS_URL names one, and
// returns the store and a function that closes it; with neither, it returns nil (the handler's
// in-memory store). Redis being down at start is not an error: the replica starts on local state
// and joins the others when Redis answers. A Redis that refuses the replica (password, ACL
// permissions, certificate) is.
func (a *app) sharedStore(flagURL, caFile string, keyID string, secret turn.Secret, logger *slog.Logger) (*redisstore.Store, func(), error) {
	raw, from := flagURL, "--redis-url"
	if raw == "" {
		raw, from = a.getenv(redisURLEnv), redisURLEnv
	}
	if raw == "" {
		if caFile != "" {
			return nil, nil, usagef("--redis-ca-file needs a rediss:// URL in --redis-url or %s", redisURLEnv)
		}
		return nil, func() {}, nil
	}
	if u, err := url.Parse(raw); err == nil && from == "--redis-url" {
		if _, hasPassword := u.User.Password(); hasPassword {
			logger.Warn("cfturn serve-ice: --redis-url holds a password, which ps shows to every user; set " + redisURLEnv + " instead")
		}
	}
	var configure []func(*redis.Options) error
	if caFile != "" {
		configure = append(configure, redisstore.TrustCA(caFile))
	}
	rdb, err := redisstore.NewClient(raw, configure...)
	if err != nil {
		return nil, nil, usagef("%s: %v", from, err)
	}
	// go-redis logs connection failures itself; the store logs each change of state once.
	redis.SetLogger(quietRedisLogger{logger})
	store, err := redisstore.New(rdb, redisstore.Options{KeyID: keyID, KeySecret: secret, Logger: logger})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisstore.DefaultTimeout*4)
	defer cancel()
	// Check runs every command the store's scripts need, so a user without script permission
	// is found now rather than leaving sharing silently off.
	if err := store.Check(ctx); err != nil {
		// A refused password, permission or certificate will not get better by waiting: say so now.
		if msg := err.Error(); misconfigured(msg) {
			store.Close()
			rdb.Close()
			fix := " (check the user and password in the URL, and --redis-ca-file for rediss://)"
			if strings.Contains(msg, "NOPERM") {
				fix = ""
			}
			return nil, nil, usagef("%s: Redis refused this replica: %s%s", from, msg, fix)
		}
		logger.Warn("cfturn serve-ice: Redis does not answer; starting on local state, shared state resumes when it does", "error", err.Error())
	} else {
		logger.Info("cfturn serve-ice: sharing cache and limits through Redis", "addr", rdb.Options().Addr, "tls", rdb.Options().TLSConfig != nil)
	}
	return store, func() { store.Close(); rdb.Close() }, nil
}

// misconfigured reports a Redis error that is the replica's configuration, not an outage: a wrong
// password or user, a missing permission, an untrusted certificate.
func misconfigured(msg string) bool {
	for _, m := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "invalid username-password", "x509:", "tls: "} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// quietRedisLogger sends go-redis's own messages to the debug level.
type quietRedisLogger struct{ l *slog.Logger }

func (q quietRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	q.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// redisCollector exposes the store's state to Prometheus.
type redisCollector struct {
	s                   interface{ Stats() redisstore.Stats }
	up, calls, failures *prometheus.Desc
}

func newRedisCollector(s interface{ Stats() redisstore.Stats }) *redisCollector {
	return &redisCollector{
		s:        s,
		up:       prometheus.NewDesc("cfturn_redis_up", "1 while Redis answered the store's last real operation (a script), 0 while this replica runs on local state.", nil, nil),
		calls:    prometheus.NewDesc("cfturn_redis_calls_total", "Round trips to Redis.", nil, nil),
		failures: prometheus.NewDesc("cfturn_redis_failures_total", "Redis calls that failed or timed out.", nil, nil),
	}
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.calls
	ch <- c.failures
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	up := 0.0
	if st.Healthy {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(st.RedisCalls))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.RedisFailures))
}
