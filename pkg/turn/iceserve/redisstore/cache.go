package redisstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// Credential implements iceserve.Store: the local layer first, then Redis.
func (s *Store) Credential(ctx context.Context, key string) (*iceserve.Credential, error) {
	now := s.opts.Now()
	if c := s.local.get(key, now); c != nil {
		return c, nil
	}
	if !s.tryRedis() {
		return s.fallback.Credential(ctx, key)
	}
	if s.isPending(key) {
		// Dropped here while Redis failed: what Redis holds for key must not be served.
		if !s.replayDrop(ctx, key) {
			return s.fallback.Credential(ctx, key)
		}
		return nil, nil
	}
	rk := s.credKey(key)
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return readScript.Run(ctx, s.rdb, []string{rk}, s.opts.MaxValueBytes).Slice()
	})
	if err != nil {
		return s.fallback.Credential(ctx, key)
	}
	r, ok := parseStored(v.([]any))
	if !ok {
		s.foreign("a credential read returned an unexpected reply", -1)
		return nil, nil
	}
	now = s.opts.Now() // the key's remaining life counts from its answer
	c := s.open(rk, r, now)
	if c == nil {
		return nil, nil
	}
	s.remember(key, c, now)
	return c, nil
}

// stored is a credential as the read scripts return it (see boundedRead).
type stored struct {
	state int64 // 0 absent, 1 present, 2 foreign
	value []byte
	size  int64
	ttl   time.Duration
}

func parseStored(v []any) (stored, bool) {
	if len(v) != 3 {
		return stored{}, false
	}
	state, ok1 := v[0].(int64)
	ttl, ok2 := v[2].(int64)
	if !ok1 || !ok2 {
		return stored{}, false
	}
	r := stored{state: state, ttl: time.Duration(ttl) * time.Millisecond}
	switch x := v[1].(type) {
	case string:
		r.value = []byte(x)
	case int64:
		r.size = x
	}
	return r, state >= 0 && state <= 2
}

// open returns the credential r holds, with its times counted on Redis's clock, or nil.
func (s *Store) open(rk string, r stored, now time.Time) *iceserve.Credential {
	switch r.state {
	case 0:
		return nil
	case 2:
		s.foreign("ignoring a value under a credential key that no replica wrote (another type, no expiry, or over MaxValueBytes)", r.size)
		return nil
	}
	c, err := s.seal.open(rk, r.value)
	if err != nil {
		// Sealed under another secret (the key was rotated) or tampered: treated as absent, so it
		// is minted again and overwritten.
		s.foreign("ignoring a cached credential that does not open", int64(len(r.value)))
		return nil
	}
	return rebase(c, now.Add(r.ttl))
}

// rebase moves c's times so that it expires at expires, and its answer's expiresAt with them,
// when they differ by more than maxSkew. The minter's clock wrote c's times; the key's remaining
// life is Redis's, so a replica whose clock is off cannot make others serve a credential past
// its real expiry.
func rebase(c *iceserve.Credential, expires time.Time) *iceserve.Credential {
	shift := expires.Sub(c.Expires)
	if shift > -maxSkew && shift < maxSkew {
		return c
	}
	moved := *c
	moved.Sent, moved.FreshUntil, moved.Expires = c.Sent.Add(shift), c.FreshUntil.Add(shift), expires
	var body map[string]json.RawMessage
	if json.Unmarshal(c.Body, &body) == nil {
		if _, ok := body["expiresAt"]; ok {
			body["expiresAt"] = strconv.AppendInt(nil, expires.Unix(), 10)
			if b, err := json.Marshal(body); err == nil {
				moved.Body = b
			}
		}
	}
	return &moved
}

// maxSkew is the difference between the minter's clock and the key's remaining life that is
// not corrected: it is within what a loaded Redis call can take, and the same answer then stays
// byte for byte the same on every replica.
const maxSkew = 5 * time.Second

// foreign logs a value no replica wrote, at most once per RetryAfter.
func (s *Store) foreign(msg string, size int64) {
	now := time.Now().UnixNano()
	last := s.foreignLogged.Load()
	if now-last < int64(s.opts.RetryAfter) || !s.foreignLogged.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger.Warn("redisstore: "+msg, "bytes", size, "max_bytes", s.opts.MaxValueBytes)
}

func (s *Store) remember(key string, c *iceserve.Credential, now time.Time) {
	s.local.put(key, c, minTime(now.Add(s.opts.LocalTTL), c.FreshUntil), now)
}

// SetCredential implements iceserve.Store: the sealed credential goes to Redis for the rest of
// its life (measured on this replica's clock from when it was minted; Redis counts it down on
// its own), to the local layer, and to the fallback used while Redis is down. A Redis failure is
// not an error: the credential is served from this replica, and the store logs the outage.
func (s *Store) SetCredential(ctx context.Context, key string, c *iceserve.Credential) error {
	now := s.opts.Now()
	s.remember(key, c, now)
	s.fallback.SetCredential(ctx, key, c)
	rk := s.credKey(key)
	sealed, err := s.seal.seal(rk, c)
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if len(sealed) > s.opts.MaxValueBytes {
		return fmt.Errorf("redisstore: a sealed credential of %d bytes is over MaxValueBytes (%d): kept on this replica only", len(sealed), s.opts.MaxValueBytes)
	}
	life := c.Expires.Sub(now).Milliseconds()
	if life < 1 || !s.tryRedis() {
		return nil
	}
	if _, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return setScript.Run(ctx, s.rdb, []string{rk}, sealed, life).Result()
	}); err == nil {
		s.clearPending(key) // the credential a pending drop was for is gone from Redis
	}
	return nil
}

// DropCredential implements iceserve.Store: the credential leaves Redis, this replica, and every
// other replica's local layer and fallback (through a sealed notice on a Redis channel), and is
// returned. Redis is tried even during the pause after a failure. When it cannot be reached the
// credential is dropped here, the error says so, and the drop is sent to Redis as soon as it
// answers again (every ReserveIdle, and before this replica reads key from Redis); until then
// other replicas may serve it from Redis.
func (s *Store) DropCredential(ctx context.Context, key string) (*iceserve.Credential, error) {
	now := s.opts.Now()
	c := s.local.get(key, now)
	s.local.drop(key)
	if fc, _ := s.fallback.DropCredential(ctx, key); c == nil {
		c = fc
	}
	rc, err := s.sendDrop(ctx, key)
	if err != nil {
		if !s.addPending(key) {
			return c, fmt.Errorf("redisstore: drop: Redis unavailable (%w), dropped on this replica only, and too many drops wait for Redis to queue this one: other replicas serve it until it expires", err)
		}
		return c, fmt.Errorf("redisstore: drop: Redis unavailable (%w), dropped on this replica only for now; it is sent to Redis when Redis answers", err)
	}
	if rc != nil {
		c = rc
	}
	return c, nil
}

// sendDrop deletes key's credential in Redis and tells the other replicas, in one script; it
// returns the credential Redis held, if any.
func (s *Store) sendDrop(ctx context.Context, key string) (*iceserve.Credential, error) {
	rk := s.credKey(key)
	notice := hex.EncodeToString(s.seal.sealBytes(s.dropChannel(), []byte(key)))
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return dropScript.Run(ctx, s.rdb, []string{rk}, s.opts.MaxValueBytes, s.dropChannel(), notice).Slice()
	})
	if err != nil {
		return nil, err
	}
	s.clearPending(key)
	if r, ok := parseStored(v.([]any)); ok {
		return s.open(rk, r, s.opts.Now()), nil
	}
	return nil, nil
}

func (s *Store) addPending(key string) bool {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if _, ok := s.pending[key]; !ok && len(s.pending) >= s.opts.LocalEntries {
		return false
	}
	s.pending[key] = struct{}{}
	return true
}

func (s *Store) clearPending(key string) {
	s.pendingMu.Lock()
	delete(s.pending, key)
	s.pendingMu.Unlock()
}

func (s *Store) isPending(key string) bool {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	_, ok := s.pending[key]
	return ok
}

// replayDrop sends key's pending drop; it reports whether Redis took it.
func (s *Store) replayDrop(ctx context.Context, key string) bool {
	_, err := s.sendDrop(ctx, key)
	return err == nil
}

// replayDrops sends the pending drops, stopping at the first failure.
func (s *Store) replayDrops(ctx context.Context) {
	s.pendingMu.Lock()
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	s.pendingMu.Unlock()
	for _, k := range keys {
		if !s.replayDrop(ctx, k) {
			return
		}
	}
}

// listen removes credentials dropped on other replicas from the local layer and the fallback.
// It reads the subscription itself (not through the client's channel, whose goroutine a panic
// would kill the process in), and subscribes again RetryAfter after any failure.
func (s *Store) listen(ctx context.Context) {
	defer s.wg.Done()
	for {
		if err := s.listenOnce(ctx); err != nil && ctx.Err() == nil {
			var perr panicError
			if errors.As(err, &perr) {
				s.failed(err, true)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.RetryAfter):
		}
	}
}

// panicError is a panic of the client, recovered.
type panicError struct{ v any }

func (e panicError) Error() string {
	return fmt.Sprintf("the Redis client panicked on a reply (a broken or hostile server?): %v", e.v)
}

// listenPing is how long the listener waits for a message before it pings Redis, and then for
// the answer before it subscribes again: a connection that died silently is noticed.
const listenPing = 30 * time.Second

func (s *Store) listenOnce(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	sub := s.rdb.Subscribe(ctx, s.dropChannel())
	defer sub.Close()
	s.subMu.Lock()
	if s.closed {
		s.subMu.Unlock()
		return nil
	}
	s.sub = sub
	s.subMu.Unlock()
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, listenPing)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ne) && ne.Timeout() && !pinged:
			pinged = true
			if err := sub.Ping(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		pinged = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		sealed, err := hex.DecodeString(m.Payload)
		if err != nil {
			continue
		}
		if key, err := s.seal.openBytes(s.dropChannel(), sealed); err == nil {
			s.local.drop(string(key))
			s.fallback.DropCredential(ctx, string(key))
		}
	}
}
