package turnredis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Credential implements turn.ICEStore: the local layer first, then Redis.
func (s *Store) Credential(ctx context.Context, key string) (*turn.ICECredential, error) {
	now := s.opts.Now()
	if c := s.local.get(key, now); c != nil {
		return c, nil
	}
	if !s.tryRedis() {
		return s.fallback.Credential(ctx, key)
	}
	rk := s.credKey(key)
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return s.rdb.Get(ctx, rk).Bytes()
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return s.fallback.Credential(ctx, key)
	}
	c, err := s.seal.open(rk, v.([]byte))
	if err != nil {
		// Sealed under another secret (the key was rotated) or tampered: treated as absent, so it
		// is minted again and overwritten.
		s.opts.Logger.Warn("turnredis: ignoring a cached credential that does not open", "error", err.Error())
		return nil, nil
	}
	s.remember(key, c, now)
	return c, nil
}

func (s *Store) remember(key string, c *turn.ICECredential, now time.Time) {
	s.local.put(key, c, minTime(now.Add(s.opts.LocalTTL), c.FreshUntil), now)
}

// SetCredential implements turn.ICEStore: the sealed credential goes to Redis with the
// credential's own expiry (one SET with EXAT semantics, so it never stays without one), to the
// local layer, and to the fallback used while Redis is down. A Redis failure is not an error: the
// credential is served from this replica, and the store logs the outage.
func (s *Store) SetCredential(ctx context.Context, key string, c *turn.ICECredential) error {
	s.remember(key, c, s.opts.Now())
	s.fallback.SetCredential(ctx, key, c)
	rk := s.credKey(key)
	sealed, err := s.seal.seal(rk, c)
	if err != nil {
		return fmt.Errorf("turnredis: %w", err)
	}
	if !s.tryRedis() {
		return nil
	}
	s.do(ctx, func(ctx context.Context) (any, error) {
		return nil, s.rdb.SetArgs(ctx, rk, sealed, redis.SetArgs{ExpireAt: c.Expires}).Err()
	})
	return nil
}

// DropCredential implements turn.ICEStore: the credential leaves Redis, this replica, and every
// other replica's local layer and fallback (through a sealed notice on a Redis channel), and is
// returned. When Redis cannot be reached it is dropped here only, and the error says so.
func (s *Store) DropCredential(ctx context.Context, key string) (*turn.ICECredential, error) {
	c := s.local.get(key, s.opts.Now())
	s.local.drop(key)
	if fc, _ := s.fallback.DropCredential(ctx, key); c == nil {
		c = fc
	}
	errHere := fmt.Errorf("turnredis: drop: Redis unavailable, dropped on this replica only")
	if !s.tryRedis() {
		return c, errHere
	}
	rk := s.credKey(key)
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return s.rdb.GetDel(ctx, rk).Bytes()
	})
	switch {
	case err == nil:
		if rc, err := s.seal.open(rk, v.([]byte)); err == nil {
			c = rc
		}
	case !errors.Is(err, redis.Nil):
		return c, fmt.Errorf("%w: %w", errHere, err)
	}
	notice := hex.EncodeToString(s.seal.sealBytes(s.dropChannel(), []byte(key)))
	if _, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return nil, s.rdb.Publish(ctx, s.dropChannel(), notice).Err()
	}); err != nil {
		return c, fmt.Errorf("turnredis: drop: other replicas not told, they stop serving it within LocalTTL: %w", err)
	}
	return c, nil
}

// listen removes credentials dropped on other replicas from the local layer and the fallback.
// The client's channel reconnects by itself after an outage.
func (s *Store) listen(ctx context.Context) {
	defer s.wg.Done()
	sub := s.rdb.Subscribe(ctx, s.dropChannel())
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			sealed, err := hex.DecodeString(msg.Payload)
			if err != nil {
				continue
			}
			if key, err := s.seal.openBytes(s.dropChannel(), sealed); err == nil {
				s.local.drop(string(key))
				s.fallback.DropCredential(ctx, string(key))
			}
		}
	}
}
