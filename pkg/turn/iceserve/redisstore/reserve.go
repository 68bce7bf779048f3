package redisstore

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// reserves holds tokens a replica took from callers' Redis buckets ahead of need, so that a warm
// hit is limited with no round trip: each Redis call for a warm caller takes up to reserveSize
// tokens, and the next hits spend them here. Tokens are only ever taken from Redis, so a limit
// holds exactly across replicas; a replica's unspent reserve is given back once idle, and until
// then another replica may refuse a caller up to reserveSize early.
type reserves struct {
	seed   maphash.Seed
	max    int // per shard
	shards [reserveShards]reserveShard
}

const reserveShards = 16

type reserveShard struct {
	mu sync.Mutex
	m  map[string]*reserve
}

type reserve struct {
	lim    iceserve.Limit
	tokens int
	used   time.Time
}

// reserveSize is how many tokens a replica takes at once for a warm caller: a quarter of the
// burst, from 1 (every hit asks Redis) to 64.
func reserveSize(lim iceserve.Limit) int { return min(64, max(1, lim.Burst/4)) }

func newReserves(maxEntries int) *reserves {
	r := &reserves{seed: maphash.MakeSeed(), max: max(1, maxEntries/reserveShards)}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*reserve)
	}
	return r
}

func (r *reserves) shard(key string) *reserveShard {
	return &r.shards[maphash.String(r.seed, key)%reserveShards]
}

// take spends one reserved token of key under lim, if there is one.
func (r *reserves) take(key string, lim iceserve.Limit, now time.Time) bool {
	sh := r.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rs := sh.m[key]
	if rs == nil || rs.lim != lim || rs.tokens == 0 {
		return false
	}
	rs.tokens--
	rs.used = now
	return true
}

// add reserves n tokens of key; it reports false (and keeps nothing) when the table is full, and
// the caller gives them back.
func (r *reserves) add(key string, lim iceserve.Limit, n int, now time.Time) bool {
	sh := r.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rs := sh.m[key]
	if rs == nil || rs.lim != lim {
		if rs == nil && len(sh.m) >= r.max {
			return false
		}
		rs = &reserve{lim: lim}
		sh.m[key] = rs
	}
	rs.tokens += n
	rs.used = now
	return true
}

// unspent is a reserve to give back.
type unspent struct {
	key    string
	lim    iceserve.Limit
	tokens int
}

// takeIdle removes the reserves unused since before, or all with a zero before, and returns those
// with tokens left.
func (r *reserves) takeIdle(before time.Time) []unspent {
	var out []unspent
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, rs := range sh.m {
			if before.IsZero() || rs.used.Before(before) {
				delete(sh.m, k)
				if rs.tokens > 0 {
					out = append(out, unspent{k, rs.lim, rs.tokens})
				}
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// remove drops key's reserve and returns its unspent tokens.
func (r *reserves) remove(key string) (iceserve.Limit, int) {
	sh := r.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rs := sh.m[key]
	if rs == nil {
		return iceserve.Limit{}, 0
	}
	delete(sh.m, key)
	return rs.lim, rs.tokens
}
