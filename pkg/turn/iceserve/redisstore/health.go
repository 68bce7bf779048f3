package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// tryRedis reports whether Redis should be tried now: it is healthy, or its RetryAfter pause
// after a failure has passed.
func (s *Store) tryRedis() bool {
	until := s.downUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// do runs one Redis operation bounded by Timeout and tracks health: a failure (other than a
// missing key) pauses Redis use for RetryAfter and is logged once per change of state. A panic
// in the client, which a broken or hostile server's reply can cause, is a failure like any
// other.
func (s *Store) do(ctx context.Context, op func(context.Context) (any, error)) (any, error) {
	return s.doLogged(ctx, op, true)
}

// doLogged is do; a failure is logged only with logFailure.
func (s *Store) doLogged(ctx context.Context, op func(context.Context) (any, error), logFailure bool) (any, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	s.calls.Add(1)
	s.lastTry.Store(time.Now().UnixNano())
	v, err := guarded(ctx, op)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.failed(err, logFailure)
		return nil, err
	}
	if s.down.Load() && s.down.Swap(false) {
		s.opts.Logger.Info("redisstore: Redis is back; shared state resumes")
	}
	s.downUntil.Store(0)
	return v, err
}

// guarded runs op, turning a panic into an error.
func guarded(ctx context.Context, op func(context.Context) (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, panicError{r}
		}
	}()
	return op(ctx)
}

// failed records a Redis failure: Redis is not tried again for RetryAfter, and the change of
// state is logged once.
func (s *Store) failed(err error, log bool) {
	s.failures.Add(1)
	s.downUntil.Store(time.Now().Add(s.opts.RetryAfter).UnixNano())
	if !s.down.Swap(true) && log {
		s.opts.Logger.Warn("redisstore: Redis unavailable; this replica runs on local state until it is back",
			"error", err.Error()+hint(err), "retry_after", s.opts.RetryAfter)
	}
}

// hint says how to fix the failures that are configuration, not an outage.
func hint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOPERM") && strings.Contains(msg, "channel"):
		return " (the Redis user needs the drop channel: ACL SETUSER <user> &<prefix><key id>:drop, or allchannels)"
	case strings.Contains(msg, "NOPERM") && (strings.Contains(msg, "'eval") || strings.Contains(msg, "'script")):
		return " (the Redis user needs script permission: ACL SETUSER <user> +@scripting)"
	case strings.Contains(msg, "NOPERM"):
		return " (the Redis user needs the commands the store's scripts run: +@read +@write +@scripting +publish +time, on keys <prefix>*)"
	}
	return ""
}

// Healthy reports whether the last real Redis operation succeeded. When nothing has tried Redis
// for RetryAfter, it runs one of the store's read scripts first (bounded by Timeout), so the
// answer is current on an idle replica too and a Redis that answers PING but refuses the
// store's scripts is not reported up. While it is false the replica runs on local state (see the
// package doc for which limits then hold).
func (s *Store) Healthy() bool {
	if time.Since(time.Unix(0, s.lastTry.Load())) >= s.opts.RetryAfter {
		s.do(context.Background(), func(ctx context.Context) (any, error) {
			return readScript.Run(ctx, s.rdb, []string{s.prefix + "check"}, s.opts.MaxValueBytes).Result()
		})
	}
	return !s.down.Load()
}

// Check contacts Redis and runs, once, every command the store's scripts run, on a key and a
// channel of its own: it returns nil when the store can share state through Redis, else an
// error naming what is wrong (the dial error, a refused password, a missing permission such as
// +@scripting). Call it at start-up to fail fast on a misconfiguration; the store works without
// it, on local state while Redis fails. It counts as a Redis operation for Healthy; its failure
// is the caller's to log, and the store does not log it again.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.doLogged(ctx, func(ctx context.Context) (any, error) {
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return nil, err
		}
		return checkScript.Run(ctx, s.rdb, []string{s.prefix + "check"}, s.dropChannel()).Result()
	}, false)
	if err != nil {
		return fmt.Errorf("redisstore: check: %w%s", err, hint(err))
	}
	return nil
}
