package turntest

import (
	"testing"
	"time"
)

// The usage log holds at most maxSeries counters and nothing older than it keeps, whatever is
// recorded; the oldest minutes go first.
func TestUsageLogIsBounded(t *testing.T) {
	l := newUsageLog(time.Hour)
	l.maxSeries = 10
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		at := start.Add(time.Duration(i/3) * time.Minute)
		l.add(at, usageSeries{username: string(rune('a' + i%3))}, 1, 1)
	}
	if l.series > 10 {
		t.Fatalf("%d series kept, want at most 10", l.series)
	}
	var got int
	l.each(0, 1<<40, func(int64, usageSeries, usageCount) { got++ })
	if got != l.series {
		t.Errorf("each saw %d, series says %d", got, l.series)
	}
	if first := l.minutes[0].minute; first != start.Add(33*time.Minute).Unix()/60-3 {
		t.Errorf("oldest minute kept = %v, want the newest ones", time.Unix(first*60, 0).UTC())
	}
	// An hour later everything before it is gone.
	l.add(start.Add(3*time.Hour), usageSeries{username: "z"}, 1, 0)
	if len(l.minutes) != 1 || l.series != 1 {
		t.Errorf("after an hour: %d minutes, %d series, want 1 and 1", len(l.minutes), l.series)
	}
	// One minute with more series than the cap: the extra bytes are dropped, counted as dropped.
	for i := range 20 {
		l.add(start.Add(3*time.Hour), usageSeries{username: string(rune('A' + i))}, 5, 0)
	}
	if l.series != 10 || l.dropped == 0 {
		t.Errorf("series %d, dropped %d: want the cap and some dropped", l.series, l.dropped)
	}
}

func TestAnalyticsRateBudget(t *testing.T) {
	l := newUsageLog(time.Hour)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range analyticsQueriesPer5Min {
		if !l.allow(now) {
			t.Fatalf("query %d refused", i+1)
		}
	}
	if l.allow(now.Add(time.Minute)) {
		t.Error("query 301 in 5 minutes allowed")
	}
	if !l.allow(now.Add(5 * time.Minute)) {
		t.Error("the next window refused")
	}
}
