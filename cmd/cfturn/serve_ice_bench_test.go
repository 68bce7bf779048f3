package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServeICEMemory drives serve-ice, in-process, as the memory attack of issue 10 did:
// 1000 requests whose identity header is 900 KiB (distinct values, from 8 clients), then 100,000
// distinct small identities from 64 concurrent clients. It reports the peak and retained heap of the whole process (serve-ice, the
// fake it mints from, and the clients), and the statuses seen. "default" runs with the default
// limits; "no-mint-budget" lifts the mint budget so every identity is minted and cached, the
// worst case for the handler's tables.
func BenchmarkServeICEMemory(b *testing.B) {
	for name, args := range map[string][]string{
		"default":        nil,
		"no-mint-budget": {"--mint-rate", "1e6", "--mint-burst", "1000000", "--max-in-flight", "64"},
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				memoryAttack(b, args)
			}
		})
	}
}

func memoryAttack(b *testing.B, args []string) {
	e := startServeICE(b, append([]string{"--identity-header", "X-User", "--log-level", "error"}, args...)...)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	var mu sync.Mutex
	statuses := map[string]int{}
	count := func(s string) { mu.Lock(); statuses[s]++; mu.Unlock() }
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	send := func(user string) {
		req, _ := http.NewRequest("GET", e.url, nil)
		req.Header.Set("X-User", user)
		resp, err := hc.Do(req)
		if err != nil {
			count("connection closed")
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		count(fmt.Sprint(resp.StatusCode))
	}
	work := func(n, clients int, user func(i int) string) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
					send(user(i))
				}
			}()
		}
		wg.Wait()
	}
	big := strings.Repeat("x", 900<<10)
	// Eight clients send the big identities: each holds its 900 KiB header while sending, and
	// the point is the server's memory, not the clients'.
	work(1000, 8, func(i int) string { return fmt.Sprint(i, big) })
	work(100_000, 64, func(i int) string { return fmt.Sprint("user-", i) })
	close(stopSampling)
	<-sampled

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "start-heap-MB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "retained-heap-MB")
	b.Logf("statuses: %v", statuses)
	_, metrics := e.get(b, "/metrics", "")
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "cfturn_ice_cached_credentials") || strings.HasPrefix(l, "cfturn_ice_rate_limit_buckets") || strings.HasPrefix(l, "cfturn_ice_mints_total") {
			b.Log(l)
		}
	}
}
