package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// iceMetrics exposes an iceserve.Handler's counters to Prometheus. The handler counts with atomics and
// knows nothing of Prometheus; this collector reads its Stats at scrape time, so a cache hit costs
// no metric update, and the mint latency histogram is fed by the handler's OnMint hook.
type iceMetrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	h       interface{ Stats() iceserve.Stats }
	descs   struct{ mints, hits, stale, refused, upstreamErrs, inFlight, cached, callers *prometheus.Desc }
}

func newICEMetrics() *iceMetrics {
	m := &iceMetrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cfturn_ice_mint_duration_seconds",
		Help:    "Duration of upstream mint calls, by outcome class.",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"class"})
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m.descs.mints = d("cfturn_ice_mints_total", "Upstream mint calls made.")
	m.descs.hits = d("cfturn_ice_cache_hits_total", "Answers served fresh from the cache.")
	m.descs.stale = d("cfturn_ice_stale_serves_total", "Cached answers served because their refresh failed.")
	m.descs.refused = d("cfturn_ice_refusals_total", "Requests refused, by reason.", "reason")
	m.descs.upstreamErrs = d("cfturn_ice_upstream_errors_total", "Failed upstream mint calls, by class.", "class")
	m.descs.inFlight = d("cfturn_ice_upstream_in_flight", "Upstream mint calls in flight.")
	m.descs.cached = d("cfturn_ice_cached_credentials", "Credentials in the cache.")
	m.descs.callers = d("cfturn_ice_rate_limit_buckets", "Per-caller rate-limit buckets kept.")
	m.reg.MustRegister(m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register starts collecting h's counters.
func (m *iceMetrics) register(h interface{ Stats() iceserve.Stats }) {
	m.h = h
	m.reg.MustRegister(m)
}

func (m *iceMetrics) observeMint(took time.Duration, class string) {
	m.latency.WithLabelValues(class).Observe(took.Seconds())
}

func (m *iceMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Describe implements prometheus.Collector.
func (m *iceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descs.mints, m.descs.hits, m.descs.stale, m.descs.refused, m.descs.upstreamErrs, m.descs.inFlight, m.descs.cached, m.descs.callers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *iceMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.h.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(m.descs.mints, st.UpstreamCalls)
	counter(m.descs.hits, st.CacheHits)
	counter(m.descs.stale, st.StaleServes)
	for reason, n := range st.Refused {
		counter(m.descs.refused, n, reason)
	}
	for class, n := range st.UpstreamErrors {
		counter(m.descs.upstreamErrs, n, class)
	}
	gauge(m.descs.inFlight, st.InFlight)
	gauge(m.descs.cached, int64(st.Identities))
	gauge(m.descs.callers, int64(st.Callers))
}
