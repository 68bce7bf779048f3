package turnredis

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultPrefix       = "cfturn:"
	DefaultTimeout      = 250 * time.Millisecond
	DefaultLocalTTL     = 2 * time.Second
	DefaultLeaseTTL     = 15 * time.Second
	DefaultRetryAfter   = time.Second
	DefaultLocalEntries = 10000
	DefaultLocalCallers = 100000
	DefaultReserveIdle  = 500 * time.Millisecond
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
	// LeaseTTL bounds a mint lease (default 15s, above the handler's RequestTimeout): a replica
	// that crashes while minting holds the identity's minting off at most this long.
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

	// Logger gets one record each time Redis becomes unreachable and when it is back; records
	// hold no credential, identity or password.
	Logger *slog.Logger
	// Now is the clock of the local layer and the lease polling (default time.Now).
	Now func() time.Time
}

// Store is a turn.ICEStore shared by several ICEHandler replicas through Redis. Safe for
// concurrent use. Create it with New; Close stops its drop listener.
type Store struct {
	rdb      redis.UniversalClient
	opts     Options
	seal     *sealer
	local    *local
	reserves *reserves
	fallback *turn.MemoryICEStore
	prefix   string // Prefix + KeyID + ":"

	downUntil atomic.Int64 // Unix ns until which Redis is not tried; 0 while healthy
	down      atomic.Bool
	calls     atomic.Int64
	failures  atomic.Int64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var _ turn.ICEStore = (*Store)(nil)

// New returns a Store on rdb (see redis.ParseURL for redis:// and rediss:// URLs). It does not
// contact Redis: a Store starts usable whether or not Redis is up.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("turnredis: the Redis client is nil")
	}
	if c, ok := rdb.(*redis.Client); ok && !c.Options().ContextTimeoutEnabled {
		return nil, fmt.Errorf("turnredis: the Redis client needs ContextTimeoutEnabled, or a hung Redis holds requests for its ReadTimeout instead of Options.Timeout (NewClient sets it)")
	}
	if o.KeyID == "" || o.KeySecret.IsZero() {
		return nil, fmt.Errorf("turnredis: KeyID and KeySecret are required (they namespace and seal what Redis holds)")
	}
	for name, v := range map[string]int64{"Timeout": int64(o.Timeout), "LocalTTL": int64(o.LocalTTL), "LeaseTTL": int64(o.LeaseTTL),
		"RetryAfter": int64(o.RetryAfter), "ReserveIdle": int64(o.ReserveIdle), "LocalEntries": int64(o.LocalEntries), "LocalCallers": int64(o.LocalCallers)} {
		if v < 0 {
			return nil, fmt.Errorf("turnredis: Options.%s must not be negative (0 means the default)", name)
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	seal, err := newSealer(o.KeyID, o.KeySecret)
	if err != nil {
		return nil, fmt.Errorf("turnredis: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{
		rdb:      rdb,
		opts:     o,
		seal:     seal,
		local:    newLocal(o.LocalEntries),
		reserves: newReserves(o.LocalCallers),
		fallback: turn.NewMemoryICEStore(o.LocalEntries, o.LocalCallers),
		prefix:   o.Prefix + o.KeyID + ":",
		stop:     stop,
	}
	s.wg.Add(2)
	go s.listen(ctx)
	go s.giveBackLoop(ctx)
	return s, nil
}

// NewClient returns a Redis client for url (redis://[user:password@]host:port/db, or rediss://
// for TLS, as redis.ParseURL reads it) set up for a Store: operations bounded by their context,
// so by Options.Timeout (the client's own retries, which replace connections broken by a Redis
// restart, happen inside that bound). configure, when given, adjusts the options before the
// client is made, e.g. to trust a private CA. Errors never quote the URL, which may hold a
// password.
func NewClient(url string, configure ...func(*redis.Options) error) (*redis.Client, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("turnredis: the Redis URL is not valid (want redis://[user:password@]host:port/db or rediss://...): %s", redactURLError(err, url))
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout = min(o.DialTimeout, time.Second)
	for _, f := range configure {
		if err := f(o); err != nil {
			return nil, err
		}
	}
	return redis.NewClient(o), nil
}

// TrustCA makes a rediss:// client trust the PEM certificates in caFile besides the system's.
func TrustCA(caFile string) func(*redis.Options) error {
	return func(o *redis.Options) error {
		if o.TLSConfig == nil {
			return fmt.Errorf("turnredis: a CA file is for TLS: use a rediss:// URL")
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("turnredis: reading the CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("turnredis: %s holds no PEM certificate", caFile)
		}
		o.TLSConfig.RootCAs = pool
		return nil
	}
}

// redactURLError drops the URL from a parse error, since the URL may hold a password.
func redactURLError(err error, url string) string {
	return strings.ReplaceAll(err.Error(), url, "<url>")
}

// Close stops the store's goroutines and gives back the rate-limit tokens it holds. It does not
// close the Redis client.
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	s.giveBack(context.Background(), time.Time{})
	return nil
}

// Stats counts what a Store did.
type Stats struct {
	RedisCalls    int64 // round trips to Redis (a script or command each)
	RedisFailures int64 // of which failed or timed out
	LocalEntries  int   // credentials in the local layer
	Healthy       bool  // whether Redis answered the last time it was tried
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{RedisCalls: s.calls.Load(), RedisFailures: s.failures.Load(), LocalEntries: s.local.len(), Healthy: !s.down.Load()}
}

// Healthy reports whether Redis answered the last time it was tried. While it is false the
// replica runs on local state (see the package doc for which limits then hold).
func (s *Store) Healthy() bool { return !s.down.Load() }

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
		// Not ours (a rotated key secret) or tampered: treat as absent, so it is minted again.
		s.opts.Logger.Warn("turnredis: dropping a cached credential that does not open", "error", err.Error())
		return nil, nil
	}
	s.remember(key, c, now)
	return c, nil
}

func (s *Store) remember(key string, c *turn.ICECredential, now time.Time) {
	s.local.put(key, c, minTime(now.Add(s.opts.LocalTTL), c.FreshUntil))
}

// SetCredential implements turn.ICEStore: the sealed credential goes to Redis with the
// credential's own expiry, and to the local layer.
func (s *Store) SetCredential(ctx context.Context, key string, c *turn.ICECredential) error {
	s.remember(key, c, s.opts.Now())
	s.fallback.SetCredential(ctx, key, c)
	if !s.tryRedis() {
		return nil
	}
	rk := s.credKey(key)
	_, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return nil, s.rdb.Set(ctx, rk, s.seal.seal(rk, c), 0).Err()
	})
	if err == nil {
		// SET with PXAT needs Redis 6.2; a separate PEXPIREAT keeps older servers working.
		s.do(ctx, func(ctx context.Context) (any, error) {
			return nil, s.rdb.PExpireAt(ctx, rk, c.Expires).Err()
		})
	}
	return nil
}

// DropCredential implements turn.ICEStore: the credential leaves Redis and every replica's local
// layer (through a notice on a Redis channel), and is returned.
func (s *Store) DropCredential(ctx context.Context, key string) (*turn.ICECredential, error) {
	c := s.local.get(key, s.opts.Now())
	s.local.drop(key)
	if fc, _ := s.fallback.DropCredential(ctx, key); c == nil {
		c = fc
	}
	if !s.tryRedis() {
		return c, nil
	}
	rk := s.credKey(key)
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return s.rdb.GetDel(ctx, rk).Bytes()
	})
	if err == nil {
		if rc, err := s.seal.open(rk, v.([]byte)); err == nil {
			c = rc
		}
	} else if !errors.Is(err, redis.Nil) {
		return c, fmt.Errorf("turnredis: drop: Redis unavailable, dropped on this replica only: %w", err)
	}
	if _, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return nil, s.rdb.Publish(ctx, s.dropChannel(), hex.EncodeToString([]byte(key))).Err()
	}); err != nil {
		return c, fmt.Errorf("turnredis: drop: other replicas not told, they stop serving it within LocalTTL: %w", err)
	}
	return c, nil
}

// listen removes credentials dropped on other replicas from the local layer. The client's
// channel reconnects by itself after an outage.
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
			if key, err := hex.DecodeString(msg.Payload); err == nil {
				s.local.drop(string(key))
			}
		}
	}
}

// Flight implements turn.ICEStore. Within a replica one mint per identity runs at a time; across
// replicas a lease in Redis (SET NX with LeaseTTL) elects one minter, and the others wait for its
// credential to appear. A minter that crashes leaves a lease that expires by itself.
func (s *Store) Flight(ctx context.Context, key string, mint func() (*turn.ICECredential, error)) (*turn.ICECredential, error) {
	return s.fallback.Flight(ctx, key, func() (*turn.ICECredential, error) { return s.leased(key, mint) })
}

// errMintElsewhere is answered to waiters when the replica that held the lease gave it up without
// a credential (its mint failed): they do not mint in turn, which would multiply upstream calls by
// the number of replicas during an outage.
var errMintElsewhere = errors.New("turnredis: the mint on another replica failed")

func (s *Store) leased(key string, mint func() (*turn.ICECredential, error)) (*turn.ICECredential, error) {
	if !s.tryRedis() {
		return mint()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.LeaseTTL)
	defer cancel()
	lk := s.prefix + "lease:" + hex.EncodeToString([]byte(key))
	token := rand.Text()
	won, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return s.rdb.SetNX(ctx, lk, token, s.opts.LeaseTTL).Result()
	})
	if err != nil {
		return mint()
	}
	if won.(bool) {
		c, err := mint() // mint stores the credential (SetCredential) before the lease goes
		s.do(ctx, func(ctx context.Context) (any, error) {
			return releaseScript.Run(ctx, s.rdb, []string{lk}, token).Result()
		})
		return c, err
	}
	return s.await(ctx, key, lk)
}

// await polls for the credential another replica is minting, with a growing pause (10ms to
// 200ms), until it is there, the lease is gone without one, or LeaseTTL has passed.
func (s *Store) await(ctx context.Context, key, lk string) (*turn.ICECredential, error) {
	rk := s.credKey(key)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("turnredis: waiting for another replica's mint: %w", ctx.Err())
		case <-time.After(pause):
		}
		var v []byte
		var held int64
		_, err := s.do(ctx, func(ctx context.Context) (any, error) {
			p := s.rdb.Pipeline()
			get := p.Get(ctx, rk)
			exists := p.Exists(ctx, lk)
			_, err := p.Exec(ctx)
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			v, _ = get.Bytes()
			held = exists.Val()
			return nil, nil
		})
		if err != nil {
			return nil, err
		}
		now := s.opts.Now()
		if v != nil {
			if c, err := s.seal.open(rk, v); err == nil && now.Before(c.FreshUntil) {
				s.remember(key, c, now)
				return c, nil
			}
		}
		if held == 0 {
			return nil, errMintElsewhere
		}
	}
}

// Allow implements turn.ICEStore with GCRA in Redis, on Redis's clock. For a caller whose
// credential is in the local layer a replica takes several tokens at once and spends them on the
// next hits (see Options.ReserveIdle), so a warm hit makes no round trip. While Redis is down,
// the local buckets decide on now.
func (s *Store) Allow(ctx context.Context, key string, lim turn.ICELimit, now time.Time) (time.Duration, error) {
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

// Refund implements turn.ICEStore: the token, and any reserve for key, go back.
func (s *Store) Refund(ctx context.Context, key string, lim turn.ICELimit, now time.Time) error {
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

func (s *Store) refund(ctx context.Context, key string, lim turn.ICELimit, n int) error {
	_, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return refundScript.Run(ctx, s.rdb, []string{s.rateKey(key)}, interval(lim), n).Result()
	})
	return err
}

// AllowMint implements turn.ICEStore: one budget for all replicas, a token at a time.
func (s *Store) AllowMint(ctx context.Context, lim turn.ICELimit, now time.Time) (time.Duration, error) {
	if err := checkLimit(lim); err != nil {
		return 0, err
	}
	if !s.tryRedis() {
		return s.fallback.AllowMint(ctx, lim, now)
	}
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		return takeScript.Run(ctx, s.rdb, []string{s.prefix + "mint"}, interval(lim), lim.Burst, 1).Int64Slice()
	})
	r, _ := v.([]int64)
	if err != nil || len(r) != 2 {
		return s.fallback.AllowMint(ctx, lim, now)
	}
	return time.Duration(r[0]) * time.Microsecond, nil
}

func checkLimit(lim turn.ICELimit) error {
	if lim.PerSecond <= 0 || math.IsInf(lim.PerSecond, 0) || math.IsNaN(lim.PerSecond) || lim.Burst < 1 {
		return fmt.Errorf("turnredis: limit %+v: need a finite positive rate and a burst of at least 1", lim)
	}
	return nil
}

// interval is the µs between two tokens of lim, as the scripts take it.
func interval(lim turn.ICELimit) string {
	return strconv.FormatFloat(1e6/lim.PerSecond, 'f', 3, 64)
}

// giveBackLoop returns idle reserves every ReserveIdle.
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

func (s *Store) credKey(key string) string {
	return s.prefix + "cred:" + hex.EncodeToString([]byte(key))
}
func (s *Store) dropChannel() string { return s.prefix + "drop" }
func (s *Store) rateKey(key string) string {
	return s.prefix + "rate:" + hex.EncodeToString([]byte(key))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
