package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// guardPollTimeout bounds the polls serve-ice makes itself: at start and after a key switch.
const guardPollTimeout = 15 * time.Second

// budgetFlags are serve-ice's spend-guard flags.
type budgetFlags struct {
	budget string
	every  time.Duration
}

func (b *budgetFlags) register(f *pflag.FlagSet) {
	f.StringVar(&b.budget, "egress-budget", "", "monthly TURN egress budget for the key, e.g. 900GB: past it answers carry STUN only until the month ends (UTC); needs CLOUDFLARE_API_TOKEN with Account Analytics Read")
	f.DurationVar(&b.every, "egress-poll", turnusage.DefaultGuardEvery, "how often --egress-budget asks for month-to-date egress (one analytics query each)")
}

// guard starts the spend guard when --egress-budget is set: one poll now, so the first answers
// already know the month's egress (a failure is logged, not fatal: serving never waits for the
// analytics API; but a token the API refuses stops serve-ice at start), then one every
// --egress-poll until ctx ends. It returns nil without the flag.
func (a *app) guard(ctx context.Context, b budgetFlags, keyID string, store turnusage.GuardStore, logger *slog.Logger) (*turnusage.Guard, error) {
	if b.budget == "" {
		return nil, nil
	}
	budget, err := turnusage.ParseBytes(b.budget)
	if err != nil || budget == 0 {
		return nil, usagef("--egress-budget %q: give a size such as 900GB or 1.5TB", b.budget)
	}
	if b.every < time.Minute {
		return nil, usagef("--egress-poll %v: at least 1m (the analytics have minute resolution and allow about 300 queries per 5 minutes)", b.every)
	}
	c, err := a.usageClient()
	if err != nil {
		return nil, err
	}
	if c.AccountID() == "" {
		return nil, usagef("--egress-budget needs the account: pass --account-id or set CLOUDFLARE_ACCOUNT_ID")
	}
	g, err := turnusage.NewGuard(turnusage.GuardConfig{Client: c, KeyID: keyID, Budget: budget, Every: b.every, Logger: logger, Store: store})
	if err != nil {
		return nil, usageError{err}
	}
	pctx, cancel := context.WithTimeout(ctx, guardPollTimeout)
	err = g.Poll(pctx) // logged by the guard when it fails
	cancel()
	if errors.Is(err, turn.ErrUnauthorized) || errors.Is(err, turn.ErrForbidden) {
		// A refused token is a mistake to fix now, not an outage to wait out: starting would serve
		// TURN with the guard blind until someone read the log.
		return nil, fmt.Errorf("--egress-budget: the analytics API refused the token, so the spend guard cannot see usage: %w", err)
	}
	go func() {
		// Run polls at once; the first poll above was just made, so wait one interval first.
		t := time.NewTimer(b.every)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.Run(ctx)
	}()
	st := g.Stats()
	logger.Info("cfturn serve-ice: spend guard on", "budget", turnusage.FormatBytes(budget), "egress_this_month", turnusage.FormatBytes(st.EgressBytes),
		"state", st.Status.String(), "poll_every", b.every.String())
	return g, nil
}

// guardStore is the Redis store as the guard's shared state, or none without Redis.
func guardStore(s *redisstore.Store) turnusage.GuardStore {
	if s == nil {
		return nil
	}
	return s
}

// guardCollector exposes a spend guard's state to Prometheus at scrape time.
type guardCollector struct {
	g                                            *turnusage.Guard
	h                                            interface{ Stats() iceserve.Stats }
	egress, budget, state, failures, t, stunOnly *prometheus.Desc
}

func newGuardCollector(g *turnusage.Guard, h interface{ Stats() iceserve.Stats }) *guardCollector {
	return &guardCollector{
		g:        g,
		h:        h,
		stunOnly: prometheus.NewDesc("cfturn_ice_stun_only_total", "Answers without TURN because the spend guard found the budget spent.", nil, nil),
		egress:   prometheus.NewDesc("cfturn_turn_egress_month_bytes", "Month-to-date TURN egress of the key, as the analytics last said.", nil, nil),
		budget:   prometheus.NewDesc("cfturn_turn_egress_budget_bytes", "The monthly egress budget (--egress-budget).", nil, nil),
		state:    prometheus.NewDesc("cfturn_spend_guard_state", "1 for the spend guard's current state: unknown, ok, warning or over-budget.", []string{"state"}, nil),
		failures: prometheus.NewDesc("cfturn_spend_guard_poll_failures_total", "Analytics polls that failed.", nil, nil),
		t:        prometheus.NewDesc("cfturn_spend_guard_checked_timestamp_seconds", "When the analytics last answered (Unix time).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.egress
	ch <- c.budget
	ch <- c.state
	ch <- c.failures
	ch <- c.t
	ch <- c.stunOnly
}

// Collect implements prometheus.Collector.
func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.Stats()
	ch <- prometheus.MustNewConstMetric(c.egress, prometheus.GaugeValue, float64(st.EgressBytes))
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(st.Budget))
	for _, s := range []turnusage.GuardStatus{turnusage.GuardUnknown, turnusage.GuardOK, turnusage.GuardWarning, turnusage.GuardOverBudget} {
		v := 0.0
		if s == st.Status {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s.String())
	}
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.PollFailures))
	var ts float64
	if !st.CheckedAt.IsZero() {
		ts = float64(st.CheckedAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.t, prometheus.GaugeValue, ts)
	ch <- prometheus.MustNewConstMetric(c.stunOnly, prometheus.CounterValue, float64(c.h.Stats().STUNOnly))
}

// guardReadiness is the spend guard's part of /readyz: it never makes a replica unready (serving
// does not depend on the analytics API) but says what the guard knows.
func guardReadiness(g *turnusage.Guard) string {
	if g == nil {
		return ""
	}
	st := g.Stats()
	s := "; spend guard: " + st.Status.String() + ", " + turnusage.FormatBytes(st.EgressBytes) + " of " + turnusage.FormatBytes(st.Budget) + " this month"
	if st.Status == turnusage.GuardOverBudget {
		s += ", answering STUN only"
	}
	if st.LastError != "" {
		s += "; the last analytics poll failed, keeping the last known state"
	}
	return s
}
