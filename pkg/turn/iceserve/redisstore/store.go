package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// Defaults of Options.
const (
	DefaultPrefix       = "cfturn:"
	DefaultTimeout      = 250 * time.Millisecond
	DefaultLocalTTL     = 2 * time.Second
	DefaultLeaseTTL     = 5 * time.Second
	DefaultRetryAfter   = time.Second
	DefaultLocalEntries = 10000
	DefaultLocalCallers = 100000
	DefaultReserveIdle  = 500 * time.Millisecond
	// DefaultMaxValueBytes is far above a sealed answer of Cloudflare's (about 1 KiB) and far
	// below what would hurt a replica to read.
	DefaultMaxValueBytes = 64 << 10
)

// Options configures a Store. Zero fields take the defaults above.
type Options struct {
	// KeyID and KeySecret are the TURN key's: the ID namespaces the Redis keys, the secret seals
	// the credentials at rest (required).
	KeyID     string
	KeySecret turn.Secret

	// Prefix starts every Redis key (default "cfturn:"), so one Redis can serve several apps.
	Prefix string
	// Timeout bounds each Redis operation, waiting for a pooled connection included (default
	// 250ms): past it the replica answers from its local state instead.
	Timeout time.Duration
	// LocalTTL is how long a credential read from Redis is answered from process memory before
	// Redis is asked again (default 2s). It bounds how long a credential dropped on another
	// replica can still be served here if the drop notice is lost.
	LocalTTL time.Duration
	// LeaseTTL is the life of a mint lease (default 5s). The minter renews it every LeaseTTL/3
	// while its mint runs, however long that is; a replica that crashes mid-mint holds the
	// identity's minting off at most this long.
	LeaseTTL time.Duration
	// RetryAfter is how long a replica stays on local state after a Redis failure before it
	// tries Redis again (default 1s), so an outage does not cost every request a timeout.
	RetryAfter time.Duration
	// ReserveIdle is how long a replica keeps rate-limit tokens it took ahead for a warm caller
	// (a quarter of the burst, at most 64) after the caller's last request here, before giving
	// them back to Redis (default 500ms).
	ReserveIdle time.Duration
	// LocalEntries and LocalCallers bound the local layer and the fallback store used while
	// Redis is down (defaults 10000 credentials and 100000 rate-limit buckets).
	LocalEntries int
	LocalCallers int
	// MaxValueBytes bounds a sealed credential (default 64 KiB). A larger credential is kept on
	// this replica only; a larger value found in Redis (which no replica wrote) is never read,
	// and counts as no credential.
	MaxValueBytes int

	// Logger gets one record each time Redis becomes unreachable and when it is back; records
	// hold no credential, identity or password.
	Logger *slog.Logger
	// Now is the clock of the local layer and the lease polling (default time.Now).
	Now func() time.Time
}

// Store is a iceserve.Store shared by several iceserve.Handler replicas through Redis. Safe for
// concurrent use. Create it with New; Close stops its drop listener.
type Store struct {
	rdb      redis.UniversalClient
	opts     Options
	seal     *sealer
	local    *local
	reserves *reserves
	fallback *iceserve.MemoryStore
	prefix   string // Prefix + KeyID + ":"

	downUntil atomic.Int64 // Unix ns until which Redis is not tried; 0 while healthy
	lastTry   atomic.Int64 // Unix ns of the last Redis call
	// mintSpentUntil is when the shared mint budget has its next token, as Redis last said.
	mintSpentUntil atomic.Int64
	down           atomic.Bool
	calls          atomic.Int64
	failures       atomic.Int64

	// pending holds the keys whose drop has not reached Redis yet; they are sent again as soon
	// as Redis answers (see DropCredential).
	pendingMu sync.Mutex
	pending   map[string]struct{}
	// sub is the drop listener's subscription, closed by Close to end its wait.
	subMu  sync.Mutex
	sub    *redis.PubSub
	closed bool
	// foreignLogged is when a value no replica wrote was last logged (Unix ns), so that an
	// attacker who can write to Redis cannot flood the log through it.
	foreignLogged atomic.Int64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var _ iceserve.Store = (*Store)(nil)

// New returns a Store on rdb (see NewClient). It does not contact Redis: a Store starts usable
// whether or not Redis is up. Call Check to learn at start-up whether it can share state.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("redisstore: the Redis client is nil")
	}
	if c, ok := rdb.(*redis.Client); ok && !c.Options().ContextTimeoutEnabled {
		return nil, fmt.Errorf("redisstore: the Redis client needs ContextTimeoutEnabled, or a hung Redis holds requests for its ReadTimeout instead of Options.Timeout (NewClient sets it)")
	}
	if o.KeyID == "" || o.KeySecret.IsZero() {
		return nil, fmt.Errorf("redisstore: KeyID and KeySecret are required (they namespace and seal what Redis holds)")
	}
	for name, v := range map[string]int64{"Timeout": int64(o.Timeout), "LocalTTL": int64(o.LocalTTL), "LeaseTTL": int64(o.LeaseTTL),
		"RetryAfter": int64(o.RetryAfter), "ReserveIdle": int64(o.ReserveIdle), "LocalEntries": int64(o.LocalEntries), "LocalCallers": int64(o.LocalCallers),
		"MaxValueBytes": int64(o.MaxValueBytes)} {
		if v < 0 {
			return nil, fmt.Errorf("redisstore: Options.%s must not be negative (0 means the default)", name)
		}
	}
	o.Prefix = cmp.Or(o.Prefix, DefaultPrefix)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.LocalTTL = cmp.Or(o.LocalTTL, DefaultLocalTTL)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.RetryAfter = cmp.Or(o.RetryAfter, DefaultRetryAfter)
	o.ReserveIdle = cmp.Or(o.ReserveIdle, DefaultReserveIdle)
	o.LocalEntries = cmp.Or(o.LocalEntries, DefaultLocalEntries)
	o.LocalCallers = cmp.Or(o.LocalCallers, DefaultLocalCallers)
	o.MaxValueBytes = cmp.Or(o.MaxValueBytes, DefaultMaxValueBytes)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	seal, err := newSealer(o.KeyID, o.KeySecret)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{
		rdb:      rdb,
		opts:     o,
		seal:     seal,
		local:    newLocal(o.LocalEntries),
		reserves: newReserves(o.LocalCallers),
		fallback: iceserve.NewMemoryStore(o.LocalEntries, o.LocalCallers),
		prefix:   o.Prefix + o.KeyID + ":",
		pending:  make(map[string]struct{}),
		stop:     stop,
	}
	s.wg.Add(2)
	go s.listen(ctx)
	go s.giveBackLoop(ctx)
	return s, nil
}

// Close stops the store's goroutines, gives back the rate-limit tokens it holds and tries once
// more the drops that have not reached Redis. It does not close the Redis client.
func (s *Store) Close() error {
	s.stop()
	s.subMu.Lock()
	s.closed = true
	if s.sub != nil {
		s.sub.Close()
	}
	s.subMu.Unlock()
	s.wg.Wait()
	s.giveBack(context.Background(), time.Time{})
	s.replayDrops(context.Background())
	return nil
}

// Stats counts what a Store did.
type Stats struct {
	RedisCalls    int64 // round trips to Redis (a script or command each)
	RedisFailures int64 // of which failed or timed out
	LocalEntries  int   // credentials in the local layer
	Healthy       bool  // whether Redis answers (see Healthy)
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{RedisCalls: s.calls.Load(), RedisFailures: s.failures.Load(), LocalEntries: s.local.len(), Healthy: s.Healthy()}
}

// Redis names: the prefix, then the kind, then the keyed digest of the identity (see sealer) in
// braces, a Redis Cluster hash tag, so that a script given an identity's lease and credential
// finds both on one node.
func (s *Store) credKey(key string) string  { return s.prefix + "cred:{" + s.seal.name(key) + "}" }
func (s *Store) leaseKey(key string) string { return s.prefix + "lease:{" + s.seal.name(key) + "}" }
func (s *Store) rateKey(key string) string  { return s.prefix + "rate:{" + s.seal.name(key) + "}" }
func (s *Store) dropChannel() string        { return s.prefix + "drop" }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
