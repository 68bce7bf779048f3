package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// BenchmarkICEHandler1000Clients: each iteration, 1000 clients with distinct identities ask the
// handler for credentials at once. It reports requests per second and how many upstream calls
// the handler made in all: one per identity, the rest served from its cache.
func BenchmarkICEHandler1000Clients(b *testing.B) {
	const clients = 1000
	fake := turntest.NewServer()
	defer fake.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	h, err := turn.NewICEHandler(turn.ICEHandlerConfig{
		Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour,
		Identity:      func(r *http.Request) string { return r.Header.Get("X-User") },
		RatePerMinute: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
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
