package turnredis

import (
	"context"
	"errors"
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
// missing key) pauses Redis use for RetryAfter and is logged once per change of state.
func (s *Store) do(ctx context.Context, op func(context.Context) (any, error)) (any, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	s.calls.Add(1)
	s.lastTry.Store(time.Now().UnixNano())
	v, err := op(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.failures.Add(1)
		s.downUntil.Store(time.Now().Add(s.opts.RetryAfter).UnixNano())
		if !s.down.Swap(true) {
			s.opts.Logger.Warn("turnredis: Redis unavailable; this replica runs on local state until it is back",
				"error", err.Error(), "retry_after", s.opts.RetryAfter)
		}
		return nil, err
	}
	if s.down.Load() && s.down.Swap(false) {
		s.opts.Logger.Info("turnredis: Redis is back; shared state resumes")
	}
	s.downUntil.Store(0)
	return v, err
}

// Healthy reports whether Redis answers. When nothing has tried Redis for RetryAfter, it pings
// it first (bounded by Timeout), so the answer is current on an idle replica too. While it is
// false the replica runs on local state (see the package doc for which limits then hold).
func (s *Store) Healthy() bool {
	if time.Since(time.Unix(0, s.lastTry.Load())) >= s.opts.RetryAfter {
		s.do(context.Background(), func(ctx context.Context) (any, error) { return nil, s.rdb.Ping(ctx).Err() })
	}
	return !s.down.Load()
}
