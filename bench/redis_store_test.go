package bench

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// redisReplica is an iceserve.Handler whose store is redisstore on srv, minting from fake with key.
func redisReplica(b *testing.B, fake *turntest.Server, key turn.KeyWithSecret, srv *redisserver.Server) (*iceserve.Handler, *redisstore.Store) {
	rdb, err := redisstore.NewClient("redis://" + srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rdb.Close() })
	store, err := redisstore.New(rdb, redisstore.Options{KeyID: key.ID, KeySecret: key.Secret, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return benchHandler(b, fake, key, store), store
}

// benchHandler is benchConfig's handler on store (nil: in memory), with upstream slots for every
// concurrent mint of the benchmarks.
func benchHandler(b *testing.B, fake *turntest.Server, key turn.KeyWithSecret, store iceserve.Store) *iceserve.Handler {
	cfg := benchConfig(fake, key)
	cfg.MaxInFlight, cfg.Store = 1024, store
	return mustHandler(b, cfg)
}

// BenchmarkRedisStoreWarmHits compares warm cache hits through an iceserve.Handler backed by redisstore
// with one on the default in-memory store, over loopback with 64 keep-alive clients, taking
// turns as BenchmarkICEHandlerCached does. It also reports Redis round trips per request, cold
// (each client's first request, which mints) and warm.
func BenchmarkRedisStoreWarmHits(b *testing.B) {
	const clients, perClient = 64, 4
	srv := redisserver.Start(b)
	fake, key := benchKey(b)
	redisH, store := redisReplica(b, fake, key, srv)
	memH := benchHandler(b, fake, key, nil)
	redisSrv, memSrv := httptest.NewServer(redisH), httptest.NewServer(memH)
	defer redisSrv.Close()
	defer memSrv.Close()
	redisPool, memPool := newPool(b, redisSrv.URL, clients), newPool(b, memSrv.URL, clients)

	before := store.Stats().RedisCalls
	redisPool.round(b, clients)
	cold := float64(store.Stats().RedisCalls-before) / clients
	memPool.round(b, clients)

	var redisTime, memTime time.Duration
	before = store.Stats().RedisCalls
	b.ResetTimer()
	for b.Loop() {
		took, _ := redisPool.round(b, perClient*clients)
		redisTime += took
		took, _ = memPool.round(b, perClient*clients)
		memTime += took
	}
	b.StopTimer()
	requests := float64(b.N * perClient * clients)
	redisRate, memRate := requests/redisTime.Seconds(), requests/memTime.Seconds()
	b.ReportMetric(redisRate, "redis-req/s")
	b.ReportMetric(memRate, "memory-req/s")
	b.ReportMetric(redisRate/memRate, "redis/memory")
	b.ReportMetric(cold, "redis-calls/cold-req")
	b.ReportMetric(float64(store.Stats().RedisCalls-before)/requests, "redis-calls/warm-req")
}

// BenchmarkReplicaMints sends the same load, 300 identities asking 3 times each, round-robin over
// 3 replicas sharing Redis, over 3 replicas with their own memory, and to 1 replica, each against
// a fresh key, and reports the upstream mints of each.
func BenchmarkReplicaMints(b *testing.B) {
	const identities = 300
	srv := redisserver.Start(b)
	// mints runs the load over the handlers newReplica makes and counts the upstream calls.
	mints := func(replicas int, newReplica func(*turntest.Server, turn.KeyWithSecret) *iceserve.Handler) float64 {
		fake, key := benchKey(b)
		var pools []*pool
		for range replicas {
			s := httptest.NewServer(newReplica(fake, key))
			b.Cleanup(s.Close)
			pools = append(pools, newPool(b, s.URL, identities))
		}
		for round := range 3 {
			for i := range identities { // identity i asks replica (i+round) mod n
				p := pools[(i+round)%len(pools)]
				resp, err := p.hc.Do(p.reqs[i])
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		}
		return float64(fake.Requests()["generateIceServers"])
	}
	shared := func(fake *turntest.Server, key turn.KeyWithSecret) *iceserve.Handler {
		h, _ := redisReplica(b, fake, key, srv)
		return h
	}
	memory := func(fake *turntest.Server, key turn.KeyWithSecret) *iceserve.Handler {
		return benchHandler(b, fake, key, nil)
	}
	var withRedis, without, single float64
	for b.Loop() {
		withRedis += mints(3, shared)
		without += mints(3, memory)
		single += mints(1, memory)
	}
	n := float64(b.N)
	b.ReportMetric(withRedis/n, "mints-3-replicas-redis")
	b.ReportMetric(without/n, "mints-3-replicas-memory")
	b.ReportMetric(single/n, "mints-1-replica")
	b.ReportMetric(identities, "identities")
}
