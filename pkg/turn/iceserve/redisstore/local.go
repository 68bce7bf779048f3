package redisstore

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// local is the in-process layer in front of Redis: a warm hit is answered from it with no round
// trip. An entry lives LocalTTL at most (and never past its credential's fresh-until), so a
// credential replaced or dropped on another replica stops being served here within LocalTTL even
// if the drop notice is lost.
type local struct {
	seed   maphash.Seed
	max    int // per shard
	shards [localShards]localShard
}

const localShards = 16

type localShard struct {
	mu      sync.RWMutex
	entries map[string]localEntry
}

type localEntry struct {
	c     *iceserve.Credential
	until time.Time
}

func newLocal(maxEntries int) *local {
	l := &local{seed: maphash.MakeSeed(), max: max(1, maxEntries/localShards)}
	for i := range l.shards {
		l.shards[i].entries = make(map[string]localEntry)
	}
	return l
}

func (l *local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)%localShards]
}

func (l *local) get(key string, now time.Time) *iceserve.Credential {
	sh := l.shard(key)
	sh.mu.RLock()
	e, ok := sh.entries[key]
	sh.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil
	}
	return e.c
}

func (l *local) put(key string, c *iceserve.Credential, until, now time.Time) {
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.entries[key]; !ok && len(sh.entries) >= l.max {
		// Evicting costs one Redis read later, never a limit: drop expired entries first,
		// else an arbitrary one.
		evicted := false
		for k, e := range sh.entries {
			if !now.Before(e.until) {
				delete(sh.entries, k)
				evicted = true
			}
		}
		if !evicted {
			for k := range sh.entries {
				delete(sh.entries, k)
				break
			}
		}
	}
	sh.entries[key] = localEntry{c: c, until: until}
}

func (l *local) drop(key string) {
	sh := l.shard(key)
	sh.mu.Lock()
	delete(sh.entries, key)
	sh.mu.Unlock()
}

func (l *local) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}
