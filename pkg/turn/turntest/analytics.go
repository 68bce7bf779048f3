package turntest

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Analytics limits of the fake, reported by its settings node and enforced on every query.
const (
	DefaultAnalyticsMaxDuration  = 31 * 24 * time.Hour // the longest range one query may cover
	DefaultAnalyticsNotOlderThan = 92 * 24 * time.Hour // how far back usage is kept
	DefaultAnalyticsMaxPageSize  = 10_000              // the largest limit a query may ask for
	// maxUsageSeries bounds the usage log: per-minute counters of a (key, username, custom
	// identifier) each, about 150 bytes apiece; the oldest minutes go first.
	maxUsageSeries = 200_000
	// analyticsQueriesPer5Min is Cloudflare's documented default budget for GraphQL queries.
	analyticsQueriesPer5Min = 300
)

// The data centre the fake reports for all its usage: its relay runs on loopback.
const (
	FakeDatacenterCity    = "Loopback"
	FakeDatacenterCountry = "XX"
	FakeDatacenterRegion  = "LOCAL"
)

// WithAnalyticsLimits sets the limits of the fake's analytics dataset (the settings node's
// maxDuration, notOlderThan and maxPageSize); zero values keep the defaults. Small limits let a
// test see a client split its queries.
func WithAnalyticsLimits(maxDuration, notOlderThan time.Duration, maxPageSize int) Option {
	return func(s *settings) {
		s.analytics = analyticsLimits{maxDuration: maxDuration, notOlderThan: notOlderThan, maxPageSize: maxPageSize}
	}
}

// analyticsLimits are the dataset's limits; zero fields mean the defaults.
type analyticsLimits struct {
	maxDuration, notOlderThan time.Duration
	maxPageSize               int
}

func (l analyticsLimits) withDefaults() analyticsLimits {
	if l.maxDuration <= 0 {
		l.maxDuration = DefaultAnalyticsMaxDuration
	}
	if l.notOlderThan <= 0 {
		l.notOlderThan = DefaultAnalyticsNotOlderThan
	}
	if l.maxPageSize <= 0 {
		l.maxPageSize = DefaultAnalyticsMaxPageSize
	}
	return l
}

// analytics is the fake's GraphQL Analytics API: its limits and the usage its relay carried.
type analytics struct {
	limits analyticsLimits
	usage  *usageLog
}

func newAnalytics(l analyticsLimits) *analytics {
	l = l.withDefaults()
	return &analytics{limits: l, usage: newUsageLog(l.notOlderThan)}
}

// usageSeries names one series of counters: usage is kept per minute for each of them.
type usageSeries struct {
	account, keyID, username, customIdentifier string
}

type usageCount struct{ egress, ingress uint64 }

type usageMinute struct {
	minute int64 // Unix minute
	series map[usageSeries]*usageCount
}

// usageLog holds per-minute byte counters, oldest minute first, bounded in age and in count.
type usageLog struct {
	mu        sync.Mutex
	minutes   []*usageMinute
	series    int
	maxSeries int
	keep      time.Duration
	dropped   uint64 // bytes not counted because the log was full within one minute

	windowStart int64 // Unix second of the rate-limit window
	windowCount int
}

func newUsageLog(keep time.Duration) *usageLog {
	return &usageLog{maxSeries: maxUsageSeries, keep: keep}
}

// add counts bytes for s at now.
func (l *usageLog) add(now time.Time, s usageSeries, egress, ingress uint64) {
	if egress == 0 && ingress == 0 {
		return
	}
	m := now.Unix() / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	i := sort.Search(len(l.minutes), func(i int) bool { return l.minutes[i].minute >= m })
	if i == len(l.minutes) || l.minutes[i].minute != m {
		l.minutes = slices.Insert(l.minutes, i, &usageMinute{minute: m, series: make(map[usageSeries]*usageCount)})
	}
	um := l.minutes[i]
	c := um.series[s]
	if c == nil {
		for l.series >= l.maxSeries && len(l.minutes) > 1 && l.minutes[0] != um {
			l.dropOldest()
		}
		if l.series >= l.maxSeries {
			l.dropped += egress + ingress
			return
		}
		c = &usageCount{}
		um.series[s] = c
		l.series++
	}
	c.egress += egress
	c.ingress += ingress
}

func (l *usageLog) dropOldest() {
	l.series -= len(l.minutes[0].series)
	l.minutes[0] = nil
	l.minutes = l.minutes[1:]
}

// expire drops minutes older than the log keeps.
func (l *usageLog) expire(now time.Time) {
	oldest := now.Add(-l.keep).Unix() / 60
	for len(l.minutes) > 0 && l.minutes[0].minute < oldest {
		l.dropOldest()
	}
}

// each calls fn for every counter of a minute in [from, to) (Unix minutes), under the lock.
func (l *usageLog) each(from, to int64, fn func(minute int64, s usageSeries, c usageCount)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.minutes), func(i int) bool { return l.minutes[i].minute >= from })
	for ; i < len(l.minutes) && l.minutes[i].minute < to; i++ {
		for s, c := range l.minutes[i].series {
			fn(l.minutes[i].minute, s, *c)
		}
	}
}

// allow counts a query against the 5-minute budget, reporting whether it fits.
func (l *usageLog) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := now.Unix() / 300 * 300
	if w != l.windowStart {
		l.windowStart, l.windowCount = w, 0
	}
	l.windowCount++
	return l.windowCount <= analyticsQueriesPer5Min
}

// countRelayedLocked adds a TURN server's report for credential c to the usage log. The caller
// (ReportRelayed) holds f.mu; the log has a lock of its own, taken after f.mu and never before it.
func (f *Fake) countRelayedLocked(c *credential, t RelayedTraffic) {
	account := ""
	if k := f.byID[c.keyID]; k != nil {
		account = k.account
	}
	f.analytics.usage.add(f.now(), usageSeries{account: account, keyID: c.keyID, username: c.username, customIdentifier: c.customIdentifier},
		uint64(max(t.Egress, 0)), uint64(max(t.Ingress, 0)))
}

// RecordUsage adds usage to the fake's analytics as if its relay had carried it at time at, for
// a credential of key keyID (in the account that holds it, or the default account when the key is
// unknown). It lets a test of billing code set up usage without relaying traffic; the relay's own
// counts go to the same place.
func (f *Fake) RecordUsage(at time.Time, keyID, username, customIdentifier string, egressBytes, ingressBytes uint64) {
	f.mu.Lock()
	account := f.defaultAccount
	if k := f.byID[keyID]; k != nil {
		account = k.account
	}
	f.mu.Unlock()
	f.analytics.usage.add(at, usageSeries{account: account, keyID: keyID, username: username, customIdentifier: customIdentifier}, egressBytes, ingressBytes)
}
