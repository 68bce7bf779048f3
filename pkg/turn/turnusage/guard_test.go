package turnusage_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// clock is a clock a test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func newGuard(t *testing.T, c *turnusage.Client, clk *clock, budget uint64, store turnusage.GuardStore, log *syncbuf.Buffer) *turnusage.Guard {
	t.Helper()
	cfg := turnusage.GuardConfig{Client: c, KeyID: keyA, Budget: budget, Now: clk.Now, Store: store}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	g, err := turnusage.NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardWarnsStopsAndComesBackNextMonth(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC)}
	srv, c, tr := setup(t, []turntest.Option{turntest.WithClock(clk.Now)})
	var log syncbuf.Buffer
	g := newGuard(t, c, clk, 1000, nil, &log)
	ctx := context.Background()
	if g.Status() != turnusage.GuardUnknown || g.OverBudget() {
		t.Fatalf("before any poll: %v", g.Status())
	}
	srv.RecordUsage(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), keyA, "u", "x", 5000, 0) // last month: does not count
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyB, "u", "x", 5000, 0)                      // another key
	step := func(egress uint64, want turnusage.GuardStatus) {
		t.Helper()
		if egress > 0 {
			srv.RecordUsage(clk.Now().Add(-time.Minute), keyA, "u", "x", egress, 1)
		}
		if err := g.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if got := g.Status(); got != want {
			t.Fatalf("after %d more bytes: %v, want %v (%+v)", egress, got, want, g.Stats())
		}
	}
	step(0, turnusage.GuardOK)
	step(850, turnusage.GuardWarning)
	if !strings.Contains(log.String(), "reached 80% of the monthly budget") {
		t.Errorf("no warning logged at 80%%:\n%s", log.String())
	}
	step(200, turnusage.GuardOverBudget)
	if !g.OverBudget() || g.Stats().EgressBytes != 1050 || !strings.Contains(log.String(), "over the monthly budget") {
		t.Errorf("stats %+v, log:\n%s", g.Stats(), log.String())
	}

	// The API fails: the Guard keeps what it knew, logs and counts the failure.
	if err := srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Status: 400, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := g.Poll(ctx); !errors.Is(err, turn.ErrBadRequest) {
		t.Fatalf("Poll = %v, want the failure", err)
	}
	if st := g.Stats(); st.Status != turnusage.GuardOverBudget || st.PollFailures != 1 || st.LastError == "" {
		t.Errorf("after a failed poll: %+v, want the last state kept and the failure counted", st)
	}
	if !strings.Contains(log.String(), "keeping the last known state") {
		t.Errorf("the failure was not logged:\n%s", log.String())
	}

	// A new month: the old month's egress stops counting at once, before the next poll.
	clk.Set(time.Date(2027, 1, 1, 0, 0, 30, 0, time.UTC))
	if g.OverBudget() || g.Status() != turnusage.GuardOK {
		t.Errorf("at the new month: %+v, want ok", g.Stats())
	}
	step(0, turnusage.GuardOK)
	if got := tr.Seen()["UsageTotal"]; got != 5 {
		t.Errorf("%d usage queries for 5 polls, want one each", got)
	}
}

// Replicas sharing a store ask once per interval between them, and one whose API fails learns
// what another read.
func TestGuardSharesStateThroughAStore(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)}
	srv, c1, _ := setup(t, []turntest.Option{turntest.WithClock(clk.Now)})
	once, err := srv.Client().Clone(turn.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := turnusage.NewClient(once)
	if err != nil {
		t.Fatal(err)
	}
	store := turnusage.NewMemoryGuardStore()
	g1 := newGuard(t, c1, clk, 1000, store, nil)
	g2 := newGuard(t, c2, clk, 1000, store, nil)
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyA, "u", "x", 2000, 0)
	ctx := context.Background()
	if err := g1.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests()[string(turntest.OpGraphQL)]
	clk.Set(clk.Now().Add(time.Minute))
	if err := g2.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if after := srv.Requests()[string(turntest.OpGraphQL)]; after != before {
		t.Errorf("the second replica queried (%d → %d requests) though the shared state was a minute old", before, after)
	}
	if !g2.OverBudget() {
		t.Errorf("the second replica did not learn the first one's state: %+v", g2.Stats())
	}

	// Later, g2's queries fail while g1's succeed: g2 still follows the month's egress.
	clk.Set(clk.Now().Add(10 * time.Minute))
	srv.RecordUsage(clk.Now().Add(-time.Minute), keyA, "u", "x", 500, 0)
	if err := g1.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(10 * time.Minute))
	srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Status: 500, Count: 1})
	if err := g2.Poll(ctx); !errors.Is(err, turn.ErrServer) {
		t.Fatalf("Poll = %v, want the 500", err)
	}
	if st := g2.Stats(); st.EgressBytes != 2500 || st.PollFailures != 1 {
		t.Errorf("g2 = %+v, want 2500 bytes from the store and one failure", st)
	}
}

// handlerTransport serves requests with an http.Handler in the same goroutine: no sockets, so a
// synctest bubble's clock can run.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Run polls at once and then every Every, and stops with its context.
func TestGuardRunPollsEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := turntest.New()
		c, err := turnusage.NewClient(newTurnClient(t, turn.WithBaseURL("http://127.0.0.1:1/client/v4"), turn.WithAPIToken(f.Token()),
			turn.WithAccountID(f.AccountID()), turn.WithHTTPClient(&http.Client{Transport: handlerTransport{f.Handler()}})))
		if err != nil {
			t.Fatal(err)
		}
		g, err := turnusage.NewGuard(turnusage.GuardConfig{Client: c, Budget: turnusage.GB})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		synctest.Wait()
		if g.Status() != turnusage.GuardOK {
			t.Fatalf("after the first poll: %v", g.Status())
		}
		polls := func() int { return f.Requests()[string(turntest.OpGraphQL)] - 1 } // less the settings query
		if polls() != 1 {
			t.Errorf("%d polls at start, want 1", polls())
		}
		time.Sleep(3*turnusage.DefaultGuardEvery + time.Second)
		synctest.Wait()
		if polls() != 4 {
			t.Errorf("%d polls after three intervals, want 4", polls())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestNewGuardRefusesBadConfig(t *testing.T) {
	_, c, _ := setup(t, nil)
	for _, cfg := range []turnusage.GuardConfig{
		{Budget: 1},
		{Client: c},
		{Client: c, Budget: 1, WarnAt: 80},
		{Client: c, Budget: 1, Every: time.Second},
	} {
		if _, err := turnusage.NewGuard(cfg); err == nil {
			t.Errorf("NewGuard(%+v) accepted", cfg)
		}
	}
}

// With a daily cap per customIdentifier, each poll also finds the day's heaviest identifiers
// (one Top query) and reports those at the cap, until the day ends.
func TestGuardFindsHeavyIdentifiers(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 10, 15, 0, 0, 0, time.UTC)}
	srv, c, tr := setup(t, []turntest.Option{turntest.WithClock(clk.Now)})
	g, err := turnusage.NewGuard(turnusage.GuardConfig{Client: c, KeyID: keyA, Budget: turnusage.TB, Now: clk.Now, IdentifierDailyCap: 1000, HeavyTopN: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyA, "u1", "alice", 1500, 0)
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyA, "u2", "bob", 999, 0)
	srv.RecordUsage(clk.Now().Add(-20*time.Hour), keyA, "u3", "carol", 5000, 0) // yesterday
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyB, "u4", "dave", 5000, 0)     // another key
	if err := g.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"alice": true, "bob": false, "carol": false, "dave": false, "": false} {
		if got := g.HeavyIdentifier(id); got != want {
			t.Errorf("HeavyIdentifier(%q) = %v, want %v", id, got, want)
		}
	}
	if g.Stats().Heavy != 1 || tr.Seen()["UsageGroups"] != 1 {
		t.Errorf("stats %+v, %d Top queries: want 1 heavy and one query", g.Stats(), tr.Seen()["UsageGroups"])
	}
	clk.Set(time.Date(2026, 12, 11, 0, 0, 10, 0, time.UTC))
	if g.HeavyIdentifier("alice") {
		t.Error("alice is still heavy on the next day")
	}
}

// After Follow the Guard counts the month's egress of both keys: a key rotation does not reset
// the budget. Replicas that follow the same keys share one state.
func TestGuardFollowsARotatedKey(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)}
	srv, c, _ := setup(t, []turntest.Option{turntest.WithClock(clk.Now)})
	store := turnusage.NewMemoryGuardStore()
	g := newGuard(t, c, clk, 1000, store, nil)
	ctx := context.Background()
	srv.RecordUsage(clk.Now().Add(-2*time.Hour), keyA, "u", "x", 700, 0)
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyB, "u", "x", 400, 0) // the key rotated to
	if err := g.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.EgressBytes != 700 || st.Status != turnusage.GuardOK {
		t.Fatalf("before Follow: %+v, want the first key's 700 bytes", st)
	}
	g.Follow(keyB)
	g.Follow(keyB) // again: no change
	if err := g.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.EgressBytes != 1100 || st.Status != turnusage.GuardOverBudget {
		t.Errorf("after Follow: %+v, want both keys' 1100 bytes, over the budget", st)
	}
	// Another replica that followed the same keys, in the other order, reads the shared state.
	other, err := turnusage.NewGuard(turnusage.GuardConfig{Client: c, KeyID: keyB, Budget: 1000, Now: clk.Now, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	other.Follow(keyA)
	if err := srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Status: 400, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := other.Poll(ctx); err != nil || other.Stats().EgressBytes != 1100 {
		t.Errorf("a replica following the same keys: %v, %+v, want the shared 1100 bytes and no query", err, other.Stats())
	}
}

// A replica that polled its old scope after another replica had switched keys takes the other's
// newer count of both keys once it follows too, though its own last poll is later.
func TestGuardFollowTakesTheWiderScopesState(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)}
	srv, c, tr := setup(t, []turntest.Option{turntest.WithClock(clk.Now)})
	store := turnusage.NewMemoryGuardStore()
	first, second := newGuard(t, c, clk, 1000, store, nil), newGuard(t, c, clk, 1000, store, nil)
	ctx := context.Background()
	srv.RecordUsage(clk.Now().Add(-2*time.Hour), keyA, "u", "x", 700, 0)
	srv.RecordUsage(clk.Now().Add(-time.Hour), keyB, "u", "x", 400, 0)
	first.Follow(keyB)
	if err := first.Poll(ctx); err != nil || first.Stats().EgressBytes != 1100 {
		t.Fatalf("first replica: %v %+v", err, first.Stats())
	}
	clk.Set(clk.Now().Add(30 * time.Second))
	if err := second.Poll(ctx); err != nil || second.Stats().EgressBytes != 700 { // still the old key alone
		t.Fatalf("second replica before its switch: %v %+v", err, second.Stats())
	}
	queries := tr.Seen()["UsageTotal"]
	clk.Set(clk.Now().Add(time.Second))
	second.Follow(keyB)
	if err := second.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if st := second.Stats(); st.EgressBytes != 1100 || st.Status != turnusage.GuardOverBudget {
		t.Errorf("second replica after its switch: %+v, want the shared count of both keys, 1100 bytes, over the budget", st)
	}
	if got := tr.Seen()["UsageTotal"]; got != queries {
		t.Errorf("%d more queries, want none: the shared state was fresh", got-queries)
	}
}
