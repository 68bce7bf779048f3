package redisstore

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// Allow implements iceserve.Store with GCRA in Redis, on Redis's clock. For a caller whose
// credential is in the local layer a replica takes several tokens at once and spends them on the
// next hits (see Options.ReserveIdle), so most warm hits make no round trip (one in two at a
// burst of 10, one in 64 at a burst of 256 or more). While Redis is down, the local buckets
// decide on now.
func (s *Store) Allow(ctx context.Context, key string, lim iceserve.Limit, now time.Time) (time.Duration, error) {
	if err := checkLimit(lim); err != nil {
		return 0, err
	}
	if !s.tryRedis() {
		return s.fallback.Allow(ctx, key, lim, now)
	}
	want := 1
	if s.local.get(key, s.opts.Now()) != nil {
		if s.reserves.take(key, lim, now) {
			return 0, nil
		}
		want = reserveSize(lim)
	}
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return takeScript.Run(ctx, s.rdb, []string{s.rateKey(key)}, interval(lim), lim.Burst, want).Int64Slice()
	})
	r, _ := v.([]int64)
	if err != nil || len(r) != 2 {
		return s.fallback.Allow(ctx, key, lim, now)
	}
	if r[1] > 1 && !s.reserves.add(key, lim, int(r[1])-1, now) {
		s.refund(ctx, key, lim, int(r[1])-1)
	}
	return time.Duration(r[0]) * time.Microsecond, nil
}

// Refund implements iceserve.Store: the token, and any reserve for key, go back.
func (s *Store) Refund(ctx context.Context, key string, lim iceserve.Limit, now time.Time) error {
	if err := checkLimit(lim); err != nil {
		return err
	}
	if !s.tryRedis() {
		return s.fallback.Refund(ctx, key, lim, now)
	}
	n := 1
	if rlim, left := s.reserves.remove(key); rlim == lim {
		n += left
	}
	if err := s.refund(ctx, key, lim, n); err != nil {
		return s.fallback.Refund(ctx, key, lim, now)
	}
	return nil
}

func (s *Store) refund(ctx context.Context, key string, lim iceserve.Limit, n int) error {
	_, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return refundScript.Run(ctx, s.rdb, []string{s.rateKey(key)}, interval(lim), n).Result()
	})
	return err
}

// AllowMint implements iceserve.Store: one budget for all replicas, a token at a time. Once Redis
// says the budget is spent, this replica answers "wait" on its own until the next token is due,
// so a flood of new callers costs Redis nothing more.
func (s *Store) AllowMint(ctx context.Context, lim iceserve.Limit, now time.Time) (time.Duration, error) {
	if err := checkLimit(lim); err != nil {
		return 0, err
	}
	if !s.tryRedis() {
		return s.fallback.AllowMint(ctx, lim, now)
	}
	if wait := time.Until(time.Unix(0, s.mintSpentUntil.Load())); wait > 0 {
		return wait, nil
	}
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return takeScript.Run(ctx, s.rdb, []string{s.prefix + "mint"}, interval(lim), lim.Burst, 1).Int64Slice()
	})
	r, _ := v.([]int64)
	if err != nil || len(r) != 2 {
		return s.fallback.AllowMint(ctx, lim, now)
	}
	wait := time.Duration(r[0]) * time.Microsecond
	if wait > 0 {
		s.mintSpentUntil.Store(time.Now().Add(wait).UnixNano())
	}
	return wait, nil
}

func checkLimit(lim iceserve.Limit) error {
	if lim.PerSecond <= 0 || math.IsInf(lim.PerSecond, 0) || math.IsNaN(lim.PerSecond) || lim.Burst < 1 {
		return fmt.Errorf("redisstore: limit %+v: need a finite positive rate and a burst of at least 1", lim)
	}
	return nil
}

// interval is the µs between two tokens of lim, as the scripts take it.
func interval(lim iceserve.Limit) string {
	return strconv.FormatFloat(1e6/lim.PerSecond, 'f', 3, 64)
}

// giveBackLoop returns idle reserves every ReserveIdle, and sends the drops Redis missed.
func (s *Store) giveBackLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ReserveIdle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.giveBack(ctx, now.Add(-s.opts.ReserveIdle))
			if s.tryRedis() {
				s.replayDrops(ctx)
			}
		}
	}
}

// giveBack returns to Redis, in one pipeline, the reserves unused since before (all, with a zero
// before).
func (s *Store) giveBack(ctx context.Context, before time.Time) {
	idle := s.reserves.takeIdle(before)
	if len(idle) == 0 || !s.tryRedis() {
		return
	}
	s.do(ctx, func(ctx context.Context) (any, error) {
		p := s.rdb.Pipeline()
		for _, u := range idle {
			refundScript.Eval(ctx, p, []string{s.rateKey(u.key)}, interval(u.lim), u.tokens)
		}
		return p.Exec(ctx)
	})
}
