package iceserve_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Item 2: rotating identities cannot mint beyond the handler-wide budget.
func TestHandlerMintBudget(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintsPerSecond: 2, MintBurst: 5})
	for i := range 40 {
		a := ie.get(t, "GET", fmt.Sprint("rotated-", i), nil)
		switch {
		case i < 5 && a.status != 200:
			t.Fatalf("request %d within the budget: %d %s", i, a.status, a.body)
		case i >= 5 && (a.status != 503 || a.header.Get("Retry-After") != "1"):
			t.Fatalf("request %d over the budget: %d Retry-After %q", i, a.status, a.header.Get("Retry-After"))
		}
	}
	if n := ie.mints(); n != 5 {
		t.Errorf("%d mints, want the burst of 5", n)
	}
	ie.clock.Advance(time.Second)
	st := ie.parallel(t, 10, "later-")
	if st[200] != 2 || st[503] != 8 || ie.mints() != 7 {
		t.Errorf("a second later: statuses %v and %d mints, want 2 more at 2/s", st, ie.mints())
	}
	// Refused newcomers leave nothing behind: only the 7 served callers have buckets.
	if s := ie.handler.Stats(); s.Callers != 7 || s.Identities != 7 || s.Refused["mint_budget"] != 43 {
		t.Errorf("stats %+v", s)
	}
}

// Item 3: a caller with a cached credential gets it at once while attackers hold every upstream
// slot; a new caller waits its turn for a slot instead of being starved.
func TestHandlerHitsNotStarved(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MaxInFlight: 2})
	if a := ie.get(t, "GET", "victim", nil); a.status != 200 {
		t.Fatal(a.status)
	}
	// The attackers' mints hold both upstream slots until released.
	release, arrived := make(chan struct{}), make(chan struct{}, 3)
	ie.holdGenerate(release, func() { arrived <- struct{}{} })
	done := make(chan int, 3)
	for i := range 2 {
		go func() {
			a, _ := ie.do(context.Background(), "GET", fmt.Sprint("attacker-", i), nil)
			done <- a.status
		}()
	}
	<-arrived
	<-arrived
	go func() {
		a, _ := ie.do(context.Background(), "GET", "newcomer", nil)
		done <- a.status
	}()
	if a := ie.get(t, "GET", "victim", nil); a.status != 200 {
		t.Errorf("cached caller during saturation: %d", a.status)
	}
	// The answer came while the attackers' mints were still running: it waited for no slot.
	if n := ie.handler.Stats().InFlight; n != 2 {
		t.Errorf("the attackers' mints ended (%d in flight) before the cached answer: it waited", n)
	}
	close(release)
	if s := <-done + <-done + <-done; s != 600 {
		t.Errorf("attackers and the newcomer waiting for a slot: statuses sum to %d, want 3 × 200", s)
	}
	if ie.mints() != 4 {
		t.Errorf("%d mints, want 4", ie.mints())
	}
}

// Item 4: evicting a credential from the cache does not give its caller a fresh limit, and the
// limiter table is bounded without forgetting an active caller.
func TestHandlerEvictionKeepsLimit(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MaxIdentities: 2, MaxCallers: 20, RatePerMinute: 1, Burst: 2})
	for range 2 {
		if a := ie.get(t, "GET", "victim", nil); a.status != 200 {
			t.Fatal(a.status)
		}
	}
	for i := range 10 {
		if a := ie.get(t, "GET", fmt.Sprint("throwaway-", i), nil); a.status != 200 {
			t.Fatalf("throwaway %d: %d", i, a.status)
		}
	}
	if s := ie.handler.Stats(); s.Identities > 2 {
		t.Errorf("%d credentials cached, want at most MaxIdentities", s.Identities)
	}
	if a := ie.get(t, "GET", "victim", nil); a.status != 429 {
		t.Errorf("victim after its credential's eviction: %d, want 429 (its limit kept)", a.status)
	}
	for i := range 9 {
		ie.get(t, "GET", fmt.Sprint("more-", i), nil)
	}
	a := ie.get(t, "GET", "one-too-many", nil)
	if a.status != 503 || !strings.Contains(a.parsed.Error, "too many callers") {
		t.Errorf("a new caller with the table full of active callers: %d %s", a.status, a.body)
	}
	if a := ie.get(t, "GET", "victim", nil); a.status != 429 {
		t.Errorf("victim with the table full: %d, want 429 still", a.status)
	}
	// Once buckets have refilled they are the same as none, and make room.
	ie.clock.Advance(2 * time.Minute)
	if a := ie.get(t, "GET", "one-too-many", nil); a.status != 200 {
		t.Errorf("after refill: %d %s", a.status, a.body)
	}
}

// Item 5: one upstream attempt per flight, whatever the failure.
func TestHandlerOneAttemptPerFlight(t *testing.T) {
	for _, fault := range []turntest.Fault{
		{Status: 500, Count: 10},
		{Status: 503, Count: 10},
		{Drop: true, Count: 10},
		{Status: 429, RetryAfter: "1", Count: 10},
	} {
		ie := iceSetup(t, iceserve.Config{})
		ie.contract.RequestsOnly = true
		fault.Operation = "generateIceServers"
		ie.fake.InjectFault(fault)
		a := ie.get(t, "GET", "u", nil)
		if a.status < 500 || ie.mints() != 1 {
			t.Errorf("%+v: %d after %d upstream calls, want a 5xx after 1", fault, a.status, ie.mints())
		}
		if !strings.Contains(ie.logs.String(), "upstream failure") {
			t.Errorf("%+v: not logged", fault)
		}
		if ie.handler.Ready(context.Background()) == nil {
			t.Errorf("%+v: ready after a failure", fault)
		}
	}
}

// Item 5: in a 429 storm, the handler asks upstream at most once per Retry-After window,
// whatever the number of callers.
func TestHandler429Storm(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{MintBurst: 1000, MintsPerSecond: 1000})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 429, RetryAfter: "5", Count: 1000})
	if a := ie.get(t, "GET", "first", nil); a.status != 503 || a.header.Get("Retry-After") != "5" {
		t.Fatalf("first: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	for window := range 3 {
		st := ie.parallel(t, 64, fmt.Sprint("window-", window, "-"))
		if st[503] != 64 {
			t.Errorf("window %d: %v, want 64 × 503", window, st)
		}
		if want := 1 + window; ie.mints() != want {
			t.Errorf("window %d: %d upstream calls in all, want %d (one per window)", window, ie.mints(), want)
		}
		ie.clock.Advance(5 * time.Second)
	}
	ie.fake.ClearFaults()
	if a := ie.get(t, "GET", "after", nil); a.status != 200 || ie.handler.Ready(context.Background()) != nil {
		t.Errorf("after the storm: %d, ready %v", a.status, ie.handler.Ready(context.Background()))
	}
	if a := ie.get(t, "GET", "after-2", nil); a.status != 200 {
		t.Errorf("after recovery, a second caller: %d", a.status)
	}
}

// Item 8: Retry-After reaches browsers clamped.
func TestHandlerClampsRetryAfter(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{RetryAfterMax: 30 * time.Second})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 429, RetryAfter: "999999999"})
	a := ie.get(t, "GET", "u", nil)
	if a.status != 503 || a.header.Get("Retry-After") != "30" {
		t.Errorf("%d Retry-After %q, want 503 and 30", a.status, a.header.Get("Retry-After"))
	}
	// The upstream's long Retry-After holds minting off no longer than the cap either.
	ie.clock.Advance(30 * time.Second)
	if a := ie.get(t, "GET", "v", nil); a.status != 200 {
		t.Errorf("after the clamped wait: %d", a.status)
	}
}

// Item 11: a browser that goes away while its mint runs is not an upstream failure.
func TestHandlerClientGone(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	// The browser hangs up once its mint is upstream; the mint is answered only after that.
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	ie.holdGenerate(release, cancel)
	if _, err := ie.do(ctx, "GET", "leaves", nil); err == nil {
		t.Fatal("the request was not cancelled")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for ie.handler.Stats().Refused["client_gone"] == 0 || ie.handler.Stats().Identities == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", ie.handler.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	logs := ie.logs.String()
	if !strings.Contains(logs, "client went away") || strings.Contains(logs, "upstream failure") {
		t.Errorf("logs:\n%s", logs)
	}
	// The mint went on, so the caller's retry is a hit.
	if a := ie.get(t, "GET", "leaves", nil); a.status != http.StatusOK || ie.mints() != 1 {
		t.Errorf("retry: %d after %d mints", a.status, ie.mints())
	}
}

// Item 11: a failing handler is not ready; once the backoff has passed, the readiness check
// itself tries the upstream, so a replica out of rotation comes back without traffic.
func TestHandlerReadyRecovers(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{})
	ie.contract.RequestsOnly = true
	ie.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 500, Count: 2})
	ie.get(t, "GET", "u", nil)
	ctx := context.Background()
	if err := ie.handler.Ready(ctx); err == nil || !strings.Contains(err.Error(), "server") || ie.mints() != 1 {
		t.Fatalf("within the backoff: %v after %d mints, want not ready and no new mint", err, ie.mints())
	}
	ie.clock.Advance(time.Second)
	if err := ie.handler.Ready(ctx); err == nil || ie.mints() != 2 {
		t.Fatalf("a failing probe: %v after %d mints", err, ie.mints())
	}
	ie.clock.Advance(time.Second)
	if err := ie.handler.Ready(ctx); err != nil || ie.mints() != 3 {
		t.Errorf("a passing probe: %v after %d mints", err, ie.mints())
	}
}

// A server logs the failures it answers, but an attack must not flood the log: refusals are
// logged once per reason per second with a count of the rest.
func TestHandlerLogsRefusalsSampled(t *testing.T) {
	ie := iceSetup(t, iceserve.Config{RatePerMinute: 1, Burst: 1})
	for range 6 {
		ie.get(t, "GET", "greedy", nil)
	}
	if n := strings.Count(ie.logs.String(), "reason=rate_limited"); n != 1 {
		t.Fatalf("%d refusal lines for 5 refusals in one second, want 1:\n%s", n, ie.logs)
	}
	ie.clock.Advance(time.Second)
	ie.get(t, "GET", "greedy", nil)
	if !strings.Contains(ie.logs.String(), "level=INFO msg=\"iceserve: refused\" reason=rate_limited status=429 unlogged_since=4") {
		t.Errorf("the second line does not count the unlogged refusals:\n%s", ie.logs)
	}
}
