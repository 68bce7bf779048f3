package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// guardStateTTL is how long Redis keeps a spend guard's state: past the longest month, so the
// roll-over is decided by the guards' clocks, never by a key expiring.
const guardStateTTL = 40 * 24 * time.Hour

// maxGuardStateBytes bounds a guard state read from Redis: a real one, with HeavyTopN's 1,000
// identifiers of at most 256 bytes, stays well under it.
const maxGuardStateBytes = 512 << 10

// saveGuardScript saves ARGV[1], a turnusage.GuardState as JSON, in hash KEYS[1] unless the state
// there was checked later (ARGV[2], Unix ms); replicas whose answers cross keep the newest.
var saveGuardScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'checked')
if cur and tonumber(cur) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'checked', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

var _ turnusage.GuardStore = (*Store)(nil)

var errRedisPaused = errors.New("redisstore: Redis failed a moment ago; not tried again before Options.RetryAfter")

func (s *Store) guardKey(name string) string { return s.prefix + "guard:" + name }

// LoadGuardState implements turnusage.GuardStore: the spend guard state another replica saved.
// It holds usage numbers only, so it is not sealed.
func (s *Store) LoadGuardState(ctx context.Context, name string) (turnusage.GuardState, bool, error) {
	if !s.tryRedis() {
		return turnusage.GuardState{}, false, errRedisPaused
	}
	v, err := s.do(ctx, func(ctx context.Context) (any, error) { return s.rdb.HGet(ctx, s.guardKey(name), "state").Result() })
	if errors.Is(err, redis.Nil) {
		return turnusage.GuardState{}, false, nil
	}
	if err != nil {
		return turnusage.GuardState{}, false, fmt.Errorf("redisstore: load guard state: %w", err)
	}
	raw, _ := v.(string)
	if len(raw) > maxGuardStateBytes {
		return turnusage.GuardState{}, false, fmt.Errorf("redisstore: guard state in Redis is %d bytes, over the %d a real one can be", len(raw), maxGuardStateBytes)
	}
	var st turnusage.GuardState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return turnusage.GuardState{}, false, fmt.Errorf("redisstore: guard state in Redis is not JSON: %w", err)
	}
	return st, true, nil
}

// SaveGuardState implements turnusage.GuardStore, atomically keeping the most recently checked
// state.
func (s *Store) SaveGuardState(ctx context.Context, name string, st turnusage.GuardState) error {
	if !s.tryRedis() {
		return errRedisPaused
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.do(ctx, func(ctx context.Context) (any, error) {
		return saveGuardScript.Run(ctx, s.rdb, []string{s.guardKey(name)}, string(b),
			strconv.FormatInt(st.CheckedAt.UnixMilli(), 10), strconv.FormatInt(guardStateTTL.Milliseconds(), 10)).Result()
	})
	if err != nil {
		return fmt.Errorf("redisstore: save guard state: %w", err)
	}
	return nil
}
