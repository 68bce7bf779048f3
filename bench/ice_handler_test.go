package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// iceHandler returns an ICEHandler minting from a fresh fake, with limits high enough that a
// benchmark measures the handler's own cost, not its refusals. The per-identity limiter still runs.
func iceHandler(b *testing.B) *iceserve.Handler {
	fake, key := benchKey(b)
	return mustHandler(b, benchConfig(fake, key))
}

// benchConfig is the handlers' configuration in the benchmarks: minting from fake with key,
// limits set high.
func benchConfig(fake *turntest.Server, key turn.KeyWithSecret) iceserve.Config {
	return iceserve.Config{
		Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour,
		IdentityHeader: "X-User",
		RatePerMinute:  1e6, Burst: 1e6,
		MintsPerSecond: 1e6, MintBurst: 1e6,
	}
}

func mustHandler(b *testing.B, cfg iceserve.Config) *iceserve.Handler {
	h, err := iceserve.NewHandler(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchKey starts a fake and creates a key on it.
func benchKey(b *testing.B) (*turntest.Server, turn.KeyWithSecret) {
	fake := turntest.NewServer()
	b.Cleanup(fake.Close)
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return fake, key
}

// pool is clients keep-alive connections to one server, client i sending as identity client-i.
type pool struct {
	hc   *http.Client
	reqs []*http.Request
}

func newPool(b *testing.B, url string, clients int) *pool {
	p := &pool{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}}
	b.Cleanup(p.hc.CloseIdleConnections)
	for i := range clients {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-User", fmt.Sprint("client-", i))
		p.reqs = append(p.reqs, req)
	}
	return p
}

// round sends n requests spread over the pool's clients, all at once, and returns how long they
// took and the bodies of the last answers, by identity.
func (p *pool) round(b *testing.B, n int) (time.Duration, map[string][]byte) {
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	bodies := make([][]byte, len(p.reqs))
	start := time.Now()
	for i, req := range p.reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := p.hc.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				bodies[i], _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Errorf("status %d", resp.StatusCode))
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	byUser := make(map[string][]byte, len(p.reqs))
	for i, req := range p.reqs {
		byUser[req.Header.Get("X-User")] = bodies[i]
	}
	return took, byUser
}

// BenchmarkICEHandlerCached compares warm cache hits through iceserve.Handler with a bare net/http
// handler writing the same bytes (looked up by the same header), over loopback at 64 and 1000
// concurrent keep-alive clients. Each client opens its connection before timing. One op is a
// round of perClient requests per client to each of the handler, the bare server and a second
// bare server, the control, in rotating order: load from elsewhere on the machine falls on all
// alike, and the control's ratio to the bare server shows how much of a difference is noise.
func BenchmarkICEHandlerCached(b *testing.B) {
	const perClient = 2
	for _, clients := range []int{64, 1000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			h := iceHandler(b)
			ice := httptest.NewServer(h)
			defer ice.Close()
			icePool := newPool(b, ice.URL, clients)
			_, bodies := icePool.round(b, clients) // mints, and opens every connection
			bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("Content-Type", "application/json")
				w.Write(bodies[r.Header.Get("X-User")])
			}))
			defer bare.Close()
			barePool := newPool(b, bare.URL, clients)
			barePool.round(b, clients)
			// A second bare server, the control: its ratio to the first shows the noise floor.
			control := httptest.NewServer(bare.Config.Handler)
			defer control.Close()
			controlPool := newPool(b, control.URL, clients)
			controlPool.round(b, clients)
			var iceTime, bareTime, controlTime time.Duration
			turns := []struct {
				p    *pool
				took *time.Duration
			}{{icePool, &iceTime}, {barePool, &bareTime}, {controlPool, &controlTime}}
			b.ResetTimer()
			for op := 0; b.Loop(); op++ {
				for i := range turns {
					// Who goes first rotates, so no side always follows the same one.
					t := turns[(op+i)%len(turns)]
					took, _ := t.p.round(b, perClient*clients)
					*t.took += took
				}
			}
			b.StopTimer()
			if calls := h.Stats().UpstreamCalls; calls != int64(clients) {
				b.Fatalf("%d upstream calls, want one per client: the hits were not all cached", calls)
			}
			requests := float64(b.N * perClient * clients)
			iceRate, bareRate := requests/iceTime.Seconds(), requests/bareTime.Seconds()
			b.ReportMetric(iceRate, "icehandler-req/s")
			b.ReportMetric(bareRate, "bare-req/s")
			b.ReportMetric(iceRate/bareRate, "icehandler/bare")
			b.ReportMetric(bareTime.Seconds()/controlTime.Seconds(), "control/bare")
		})
	}
}

// BenchmarkICEHandler1000Clients: each iteration, 1000 clients with distinct identities ask the
// handler for credentials at once. It reports requests per second and how many upstream calls
// the handler made in all: one per identity, the rest served from its cache.
func BenchmarkICEHandler1000Clients(b *testing.B) {
	const clients = 1000
	h := iceHandler(b)
	srv := httptest.NewServer(h)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}

	requests := 0
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				req.Header.Set("X-User", fmt.Sprint("client-", i))
				resp, err := hc.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		requests += clients
	}
	b.ReportMetric(float64(requests)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(h.Stats().UpstreamCalls), "upstream-calls")
	b.ReportMetric(float64(requests), "requests")
}

// BenchmarkICEHandlerHit is the handler's own cost of a warm cache hit, without the network:
// ServeHTTP into a recorder, against a bare handler writing the same bytes.
func BenchmarkICEHandlerHit(b *testing.B) {
	h := iceHandler(b)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-User", "alice")
	warm := httptest.NewRecorder()
	h.ServeHTTP(warm, req)
	body := warm.Body.Bytes()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	for name, handler := range map[string]http.Handler{"icehandler": h, "bare": bare} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				handler.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
