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
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// iceHandler returns an ICEHandler minting from a fresh fake, with limits high enough that a
// benchmark measures the handler's own cost, not its refusals. The per-identity limiter still runs.
func iceHandler(b *testing.B) *turn.ICEHandler {
	fake := turntest.NewServer()
	b.Cleanup(fake.Close)
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	h, err := turn.NewICEHandler(turn.ICEHandlerConfig{
		Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour,
		IdentityHeader: "X-User",
		RatePerMinute:  1e6, Burst: 1e6,
		MintsPerSecond: 1e6, MintBurst: 1e6, MaxInFlight: 64,
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// drive sends b.N GETs to url from clients concurrent keep-alive clients, client i as identity
// client-i, and reports requests per second. Each client opens its connection with one request
// before the clock starts, so connection set-up is not measured.
func drive(b *testing.B, url string, clients int) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var failed atomic.Value
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	get := func(req *http.Request) bool {
		resp, err := hc.Do(req)
		if err != nil {
			failed.Store(err)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed.Store(fmt.Errorf("status %d", resp.StatusCode))
			return false
		}
		return true
	}
	for i := range clients {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("X-User", fmt.Sprint("client-", i))
			ok := get(req)
			ready.Done()
			<-start
			for ok && next.Add(1) <= int64(b.N) {
				ok = get(req)
			}
		}()
	}
	ready.Wait()
	b.ResetTimer()
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

// BenchmarkICEHandlerCached compares, in one run, warm cache hits through turn.ICEHandler with a
// bare net/http handler writing the same bytes (looked up by the same header), over loopback at
// 64 and 1000 concurrent keep-alive clients.
func BenchmarkICEHandlerCached(b *testing.B) {
	for _, clients := range []int{64, 1000} {
		h := iceHandler(b)
		ice := httptest.NewServer(h)
		bodies := make(map[string][]byte, clients)
		for i := range clients {
			user := fmt.Sprint("client-", i)
			req, _ := http.NewRequest(http.MethodGet, ice.URL, nil)
			req.Header.Set("X-User", user)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("warming %s: %d %s", user, resp.StatusCode, body)
			}
			bodies[user] = body
		}
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "application/json")
			w.Write(bodies[r.Header.Get("X-User")])
		}))
		b.Run(fmt.Sprintf("clients=%d/icehandler", clients), func(b *testing.B) { drive(b, ice.URL, clients) })
		b.Run(fmt.Sprintf("clients=%d/bare", clients), func(b *testing.B) { drive(b, bare.URL, clients) })
		ice.Close()
		bare.Close()
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
