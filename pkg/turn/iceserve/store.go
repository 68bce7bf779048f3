package iceserve

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the state a Handler shares between requests: the cached credential of each
// identity, the single flight that mints it, the per-identity rate limits and the handler-wide mint
// budget. NewMemoryStore is the default; an implementation backed by a shared database lets
// several replicas keep one view.
//
// Keys are fixed-size digests of caller identities (see Handler), never the identities
// themselves; Allow and Refund also get digests of source networks, with a limit of their own
// (Config.NetworkShare), so a table of buckets must keep each bucket's limit. An error from any method makes the handler answer 503 for that request, except a
// stale credential, which it still serves. Implementations must be safe for concurrent use.
type Store interface {
	// Credential returns key's cached credential, or nil. It is called for every request: keep it
	// cheap.
	Credential(ctx context.Context, key string) (*Credential, error)
	// SetCredential caches c for key, at most until c.Expires.
	SetCredential(ctx context.Context, key string, c *Credential) error
	// DropCredential removes key's credential, so it is never served again, and returns it
	// (nil when there was none).
	DropCredential(ctx context.Context, key string) (*Credential, error)

	// Flight runs mint for key unless a mint for key is already running, in which case it waits
	// for that one's outcome. mint must run to its end even when ctx, the context of the request
	// that started it, ends first; Flight itself returns when ctx ends.
	Flight(ctx context.Context, key string, mint func() (*Credential, error)) (*Credential, error)

	// Allow spends one token of key's bucket at now, or returns how long until one is available.
	// The table of buckets is bounded: when it is full of buckets still in use, Allow returns
	// ErrStoreFull rather than forget one, because forgetting a bucket resets its limit.
	Allow(ctx context.Context, key string, lim Limit, now time.Time) (wait time.Duration, err error)
	// Refund gives back the token a request took when it was then refused for another reason,
	// so that nothing is remembered for a refused request of a new caller.
	Refund(ctx context.Context, key string, lim Limit, now time.Time) error
	// AllowMint spends one token of the handler-wide mint budget.
	AllowMint(ctx context.Context, lim Limit, now time.Time) (wait time.Duration, err error)
}

// ErrStoreFull is returned by Store.Allow when the limiter table cannot take another caller.
var ErrStoreFull = errors.New("iceserve: store: limiter table full")

// ErrStoreBusy is returned (wrapped) by Store.Flight when the identity's credential is being
// minted elsewhere and is not ready, or that mint has just failed: the handler answers 503 with a
// one-second Retry-After, and makes no upstream call of its own.
var ErrStoreBusy = errors.New("iceserve: store: a mint for this caller is running or just failed elsewhere")

// Limit is a token bucket: Burst requests at once, refilled at PerSecond.
type Limit struct {
	PerSecond float64
	Burst     int
}

// Credential is one cached answer of a Handler. Printing it shows only its times.
type Credential struct {
	// Body is the answer sent to browsers, {"iceServers": [...], "expiresAt": ...}, rendered once.
	// It holds the credential.
	Body []byte
	// Username is the TURN username, for revocation.
	Username string
	// Sent is when the mint request was sent; the times below count from it.
	Sent time.Time
	// FreshUntil is when the credential should be replaced by a new one.
	FreshUntil time.Time
	// Expires is when Cloudflare stops accepting the credential.
	Expires time.Time
}

// String shows the credential's times, never its secrets.
func (c Credential) String() string {
	return fmt.Sprintf("{sent:%s freshUntil:%s expires:%s}", c.Sent.Format(time.RFC3339), c.FreshUntil.Format(time.RFC3339), c.Expires.Format(time.RFC3339))
}

// Format implements fmt.Formatter: every verb prints String.
func (c Credential) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

const memoryShards = 64

// MemoryStore is the in-process Store: sharded maps, so requests for different identities
// rarely meet on a lock. Create it with NewMemoryStore.
type MemoryStore struct {
	seed        maphash.Seed
	shards      uint64
	maxCreds    int // per shard
	maxBuckets  int // per shard
	sweepGap    time.Duration
	credShards  [memoryShards]credShard
	limitShards [memoryShards]limitShard
	flights     [memoryShards]flightShard

	mintMu sync.Mutex
	mint   bucket
}

type credShard struct {
	mu    sync.RWMutex
	creds map[string]*cached
	keys  []string // every key of creds once, for sampling at random
}

// cached is a credential in the MemoryStore, how often it was served from there, and where its
// key is in keys.
type cached struct {
	c    *Credential
	hits atomic.Int64
	pos  int
}

type limitShard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type flightShard struct {
	mu      sync.Mutex
	flights map[string]*flight
}

type flight struct {
	done chan struct{}
	c    *Credential
	err  error
}

// NewMemoryStore returns an in-memory store that caches at most maxCredentials credentials
// (beyond them evicting an expired one, or one seldom served from the cache, among a few it looks
// at; eviction costs a re-mint, never a limit) and tracks at most
// maxCallers rate-limit buckets (each bound holds per shard for large tables, so a table may
// evict or refuse somewhat before it is full). A bucket that has refilled to full is the same as no bucket, so
// such buckets are forgotten to make room; when none has, new callers are refused.
func NewMemoryStore(maxCredentials, maxCallers int) *MemoryStore {
	// Small tables get one shard, so their bounds are exact rather than per shard.
	shards := 1
	if min(maxCredentials, maxCallers) >= 16*memoryShards {
		shards = memoryShards
	}
	s := &MemoryStore{
		seed:       maphash.MakeSeed(),
		shards:     uint64(shards),
		maxCreds:   max(1, maxCredentials/shards),
		maxBuckets: max(1, maxCallers/shards),
		sweepGap:   time.Second,
	}
	for i := range memoryShards {
		s.credShards[i].creds = make(map[string]*cached)
		s.limitShards[i].buckets = make(map[string]*bucket)
		s.flights[i].flights = make(map[string]*flight)
	}
	return s
}

func (s *MemoryStore) shard(key string) int {
	return int(maphash.String(s.seed, key) % s.shards)
}

// Credential implements Store.
func (s *MemoryStore) Credential(_ context.Context, key string) (*Credential, error) {
	sh := &s.credShards[s.shard(key)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e := sh.creds[key]
	if e == nil {
		return nil, nil
	}
	e.hits.Add(1)
	return e.c, nil
}

// SetCredential implements Store.
func (s *MemoryStore) SetCredential(_ context.Context, key string, c *Credential) error {
	sh := &s.credShards[s.shard(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.creds[key]; ok {
		e.c = c // a refresh: the caller keeps its standing
		return nil
	}
	if len(sh.creds) >= s.maxCreds {
		sh.remove(sh.victim(time.Now()))
	}
	sh.creds[key] = &cached{c: c, pos: len(sh.keys)}
	sh.keys = append(sh.keys, key)
	return nil
}

// evictionSample is how many entries, drawn at random, a full shard looks at to choose the one
// it evicts.
const evictionSample = 8

// victim chooses the entry a full shard evicts: an expired one among a few drawn at random, else
// the one of those served least often from the cache. Identities rotated by an attacker are never
// asked for again, so they go before callers who come back; the look is short, so a full cache
// costs little per insertion.
func (sh *credShard) victim(now time.Time) string {
	var pick string
	least := int64(-1)
	for range evictionSample {
		k := sh.keys[rand.IntN(len(sh.keys))]
		e := sh.creds[k]
		if !e.c.Expires.After(now) {
			return k
		}
		if h := e.hits.Load(); least < 0 || h < least {
			pick, least = k, h
		}
	}
	return pick
}

// remove deletes key, moving the last key into its place in keys.
func (sh *credShard) remove(key string) *cached {
	e := sh.creds[key]
	if e == nil {
		return nil
	}
	last := sh.keys[len(sh.keys)-1]
	sh.keys[e.pos] = last
	sh.creds[last].pos = e.pos
	sh.keys = sh.keys[:len(sh.keys)-1]
	delete(sh.creds, key)
	return e
}

// DropCredential implements Store.
func (s *MemoryStore) DropCredential(_ context.Context, key string) (*Credential, error) {
	sh := &s.credShards[s.shard(key)]
	sh.mu.Lock()
	e := sh.remove(key)
	sh.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	return e.c, nil
}

// Credentials returns how many credentials the store holds.
func (s *MemoryStore) Credentials() int {
	n := 0
	for i := range s.credShards {
		sh := &s.credShards[i]
		sh.mu.RLock()
		n += len(sh.creds)
		sh.mu.RUnlock()
	}
	return n
}

// Callers returns how many rate-limit buckets the store holds.
func (s *MemoryStore) Callers() int {
	n := 0
	for i := range s.limitShards {
		sh := &s.limitShards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

// Flight implements Store.
func (s *MemoryStore) Flight(ctx context.Context, key string, mint func() (*Credential, error)) (*Credential, error) {
	sh := &s.flights[s.shard(key)]
	sh.mu.Lock()
	f, joined := sh.flights[key]
	if !joined {
		f = &flight{done: make(chan struct{})}
		sh.flights[key] = f
	}
	sh.mu.Unlock()
	if !joined {
		// The mint is shared, so it runs apart from the request that started it.
		go func() {
			f.c, f.err = mint()
			sh.mu.Lock()
			delete(sh.flights, key)
			sh.mu.Unlock()
			close(f.done)
		}()
	}
	select {
	case <-f.done:
		return f.c, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Allow implements Store.
func (s *MemoryStore) Allow(_ context.Context, key string, lim Limit, now time.Time) (time.Duration, error) {
	sh := &s.limitShards[s.shard(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= s.maxBuckets && !s.sweep(sh, now) {
			return 0, ErrStoreFull
		}
		b = &bucket{tokens: float64(lim.Burst), at: now, lim: lim}
		sh.buckets[key] = b
	}
	return b.take(lim, now), nil
}

// sweep forgets the shard's buckets that have refilled to full, at most once per sweepGap so an
// attacker cannot make every request walk the table; it reports whether room was made.
func (s *MemoryStore) sweep(sh *limitShard, now time.Time) bool {
	if now.Sub(sh.lastSweep) < s.sweepGap {
		return false
	}
	sh.lastSweep = now
	for k, b := range sh.buckets {
		// Each bucket by its own limit: callers and source networks share the table.
		if b.full(b.lim, now) {
			delete(sh.buckets, k)
		}
	}
	return len(sh.buckets) < s.maxBuckets
}

// Refund implements Store.
func (s *MemoryStore) Refund(_ context.Context, key string, lim Limit, now time.Time) error {
	sh := &s.limitShards[s.shard(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if b := sh.buckets[key]; b != nil {
		b.refund(lim, now)
		if b.full(lim, now) {
			delete(sh.buckets, key)
		}
	}
	return nil
}

// AllowMint implements Store.
func (s *MemoryStore) AllowMint(_ context.Context, lim Limit, now time.Time) (time.Duration, error) {
	s.mintMu.Lock()
	defer s.mintMu.Unlock()
	if s.mint.at.IsZero() {
		s.mint = bucket{tokens: float64(lim.Burst), at: now}
	}
	return s.mint.take(lim, now), nil
}

// identityKey is the store key of an identity: 16 bytes of SHA-256, so the tables' memory does
// not depend on what callers send, and identities themselves are never kept.
func identityKey(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return string(sum[:16])
}
