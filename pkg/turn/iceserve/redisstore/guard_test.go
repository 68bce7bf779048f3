package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// Two replicas' spend guards share their state through a real Redis: one query serves both, the
// newest state wins, and a replica whose Redis is gone still guards on what it read itself.
func TestGuardStateThroughRedis(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	store := func() *redisstore.Store {
		rdb, err := redisstore.NewClient("redis://" + c.redis.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		s, err := redisstore.New(rdb, redisstore.Options{KeyID: c.key.ID, KeySecret: c.key.Secret, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s1, s2 := store(), store()
	if _, ok, err := s1.LoadGuardState(ctx, "g"); ok || err != nil {
		t.Fatalf("empty Redis: %v %v", ok, err)
	}
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	newer := turnusage.GuardState{Month: month, EgressBytes: 500, CheckedAt: month.Add(2 * time.Hour)}
	older := turnusage.GuardState{Month: month, EgressBytes: 100, CheckedAt: month.Add(time.Hour)}
	if err := s1.SaveGuardState(ctx, "g", newer); err != nil {
		t.Fatal(err)
	}
	if err := s2.SaveGuardState(ctx, "g", older); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s2.LoadGuardState(ctx, "g")
	if err != nil || !ok || got.EgressBytes != 500 || !got.CheckedAt.Equal(newer.CheckedAt) || !got.Month.Equal(month) {
		t.Fatalf("loaded %+v %v %v, want the newer state", got, ok, err)
	}

	// Guards of two replicas: the second learns the first's poll without a query of its own.
	now := time.Now()
	c.fake.RecordUsage(now.Add(-time.Minute), c.key.ID, "u", "x", 2000, 0)
	guard := func(s *redisstore.Store) *turnusage.Guard {
		uc, err := turnusage.NewClient(c.fake.Client())
		if err != nil {
			t.Fatal(err)
		}
		g, err := turnusage.NewGuard(turnusage.GuardConfig{Client: uc, KeyID: c.key.ID, Budget: 1000, Store: s})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g1, g2 := guard(s1), guard(s2)
	if err := g1.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	queries := c.fake.Requests()["graphql"]
	if err := g2.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if c.fake.Requests()["graphql"] != queries || !g2.OverBudget() {
		t.Errorf("g2: %d → %d queries, %+v: want none and over budget from Redis", queries, c.fake.Requests()["graphql"], g2.Stats())
	}

	// Redis stops: the guard logs, queries the analytics itself and keeps guarding.
	c.redis.Stop()
	g3 := guard(store())
	if err := g3.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !g3.OverBudget() {
		t.Errorf("without Redis: %+v, want over budget from its own query", g3.Stats())
	}
}
