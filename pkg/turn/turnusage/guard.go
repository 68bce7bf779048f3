package turnusage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Guard defaults.
const (
	// DefaultGuardEvery is how often a Guard asks for month-to-date egress: one query each time
	// (Client.Total over the month so far: one query while the month fits in the dataset's
	// maxDuration), 288 a day, a small part of the about 300 queries per 5 minutes Cloudflare
	// allows an account. Replicas sharing a GuardStore ask about once per interval between them.
	DefaultGuardEvery = 5 * time.Minute
	// DefaultGuardWarnAt is the share of the budget at which a Guard warns.
	DefaultGuardWarnAt = 0.8
)

// GuardStatus is what a Guard concluded from the last usage it knows.
type GuardStatus int

const (
	// GuardUnknown: no usage has been read yet (the analytics API has not answered).
	GuardUnknown GuardStatus = iota
	// GuardOK: month-to-date egress is below the warning threshold.
	GuardOK
	// GuardWarning: egress has reached the warning threshold (80 % by default) of the budget.
	GuardWarning
	// GuardOverBudget: egress has reached the budget; TURN should be withheld until the month ends.
	GuardOverBudget
)

func (s GuardStatus) String() string {
	switch s {
	case GuardOK:
		return "ok"
	case GuardWarning:
		return "warning"
	case GuardOverBudget:
		return "over-budget"
	}
	return "unknown"
}

// GuardState is what a Guard knows of a month's egress. It is what replicas share.
type GuardState struct {
	Month       time.Time `json:"month"`       // the first instant (UTC) of the month it is for
	EgressBytes uint64    `json:"egressBytes"` // month-to-date egress, as of CheckedAt
	CheckedAt   time.Time `json:"checkedAt"`   // when the analytics API answered
	// Day and Heavy: with GuardConfig.IdentifierDailyCap, the customIdentifiers whose egress on
	// the UTC day starting at Day had reached the cap.
	Day   time.Time `json:"day,omitzero"`
	Heavy []string  `json:"heavy,omitempty"`
}

// GuardStore shares GuardState between replicas, so that one query serves them all and a replica
// whose queries fail still learns what another read. Implementations must be safe for concurrent
// use. NewMemoryGuardStore is one for a single process.
type GuardStore interface {
	// LoadGuardState returns the state saved under name, and false when there is none.
	LoadGuardState(ctx context.Context, name string) (GuardState, bool, error)
	// SaveGuardState saves s under name unless the state there was checked later.
	SaveGuardState(ctx context.Context, name string, s GuardState) error
}

// GuardConfig configures a Guard. Zero values mean the documented defaults.
type GuardConfig struct {
	// Client reads the usage. Required.
	Client *Client
	// KeyID is the TURN key whose egress counts, with those Follow adds; empty counts the whole
	// account.
	KeyID string
	// Budget is the egress allowed per calendar month (UTC), in bytes. Required.
	Budget uint64
	// WarnAt is the share of Budget at which the Guard warns (DefaultGuardWarnAt).
	WarnAt float64
	// Every is how often Run polls (DefaultGuardEvery); at least a minute.
	Every time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger gets a warning at WarnAt, an error at the budget, and every failed poll (nil: none).
	Logger *slog.Logger
	// Store shares the state across replicas (nil: this Guard's own).
	Store GuardStore

	// IdentifierDailyCap, when set, is the egress in bytes one customIdentifier may use in a UTC
	// day: each poll then also asks for the HeavyTopN heaviest identifiers of the day (one more
	// query), and HeavyIdentifier reports those at or over the cap.
	IdentifierDailyCap uint64
	// HeavyTopN is how many of the day's heaviest identifiers are checked (default 100, at most
	// 1000): an identifier over the cap but outside them is not seen.
	HeavyTopN int
}

// GuardStats is a Guard's state for metrics and health checks.
type GuardStats struct {
	Status       GuardStatus
	EgressBytes  uint64    // month-to-date egress, 0 when the known state is of an earlier month
	Budget       uint64    // the monthly budget
	CheckedAt    time.Time // when the analytics last answered (here or in another replica)
	PollFailures uint64    // polls that failed since the Guard started
	LastError    string    // the last failure, "" once a poll succeeds again
	Heavy        int       // customIdentifiers over IdentifierDailyCap today
}

// Guard watches month-to-date TURN egress against a monthly budget. It keeps the last state it
// knows when the analytics API fails (and logs the failure), so a failing API never blocks
// serving; at a new month the old month's egress stops counting at once, before the next poll.
// A Guard is safe for concurrent use.
type Guard struct {
	cfg GuardConfig

	mu         sync.Mutex
	scope      guardScope // what counts, changed by Follow
	stateScope string     // the name of the scope state was read for
	state      GuardState
	known      bool
	failures   uint64
	lastErr    string
	announced  GuardStatus // the status last logged, for logging transitions once
}

// NewGuard checks cfg and returns a Guard that has read nothing yet (GuardUnknown).
func NewGuard(cfg GuardConfig) (*Guard, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("turnusage: NewGuard: GuardConfig.Client is nil")
	case cfg.Budget == 0:
		return nil, errors.New("turnusage: NewGuard: GuardConfig.Budget is 0; give the monthly egress budget in bytes, e.g. 900 * turnusage.GB")
	case cfg.WarnAt < 0 || cfg.WarnAt > 1:
		return nil, fmt.Errorf("turnusage: NewGuard: GuardConfig.WarnAt %v is not a share between 0 and 1 (e.g. 0.8)", cfg.WarnAt)
	case cfg.HeavyTopN < 0 || cfg.HeavyTopN > 1000:
		return nil, fmt.Errorf("turnusage: NewGuard: GuardConfig.HeavyTopN %d: between 1 and 1000 (0: 100)", cfg.HeavyTopN)
	case cfg.Every != 0 && cfg.Every < time.Minute:
		return nil, fmt.Errorf("turnusage: NewGuard: GuardConfig.Every %v is under a minute: the data has minute resolution and the API about 300 queries per 5 minutes", cfg.Every)
	}
	if cfg.WarnAt == 0 {
		cfg.WarnAt = DefaultGuardWarnAt
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultGuardEvery
	}
	if cfg.HeavyTopN == 0 {
		cfg.HeavyTopN = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var keys []string
	if cfg.KeyID != "" {
		keys = []string{cfg.KeyID}
	}
	return &Guard{cfg: cfg, scope: newGuardScope(cfg.Client.AccountID(), keys)}, nil
}

// maxGuardKeys is how many keys a Guard counts at most: the values one query's filter takes.
const maxGuardKeys = 100

// guardScope is what a Guard counts: the whole account (no keys) or some of its keys, and the
// name its state is shared under, the same in every replica that counts the same keys.
type guardScope struct {
	keys []string
	name string
}

func newGuardScope(account string, keys []string) guardScope {
	name := "account/" + account
	switch len(keys) {
	case 0:
	case 1:
		name += "/key/" + keys[0]
	default:
		sorted := slices.Sorted(slices.Values(keys))
		sum := sha256.Sum256([]byte(strings.Join(sorted, ",")))
		name += "/keys/" + hex.EncodeToString(sum[:8])
	}
	return guardScope{keys: keys, name: name}
}

// Follow adds keyID to the keys whose egress counts, for a Guard of a key (GuardConfig.KeyID):
// call it when the service switches to a new key, so that the month's egress is that of every key
// it used and a rotation never resets the budget. The next poll counts the new key; until then
// the Guard keeps what it knew. It counts the newest 100 keys at most; a Guard of the whole
// account needs no Follow and ignores it.
func (g *Guard) Follow(keyID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := g.scope.keys
	if len(keys) == 0 || keyID == "" || slices.Contains(keys, keyID) {
		return
	}
	keys = append(slices.Clone(keys), keyID)
	keys = keys[max(0, len(keys)-maxGuardKeys):]
	g.scope = newGuardScope(g.cfg.Client.AccountID(), keys)
}

func (g *Guard) currentScope() guardScope {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.scope
}

// monthStart is the first instant of t's calendar month in UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Poll reads month-to-date egress once (one query), unless the shared store holds a state checked
// less than Every ago, and updates the Guard. On failure the Guard keeps what it knew, logs and
// counts the failure, and Poll returns the error.
func (g *Guard) Poll(ctx context.Context) error {
	now := g.cfg.Now()
	month := monthStart(now)
	sc := g.currentScope()
	if g.cfg.Store != nil {
		if s, ok, err := g.cfg.Store.LoadGuardState(ctx, sc.name); err != nil {
			g.cfg.Logger.Warn("turnusage: guard: reading the shared state failed", "guard", sc.name, "error", err.Error())
		} else if ok {
			g.adopt(s, sc.name)
			if s.Month.Equal(month) && now.Sub(s.CheckedAt) < g.cfg.Every {
				return nil // another replica asked recently
			}
		}
	}
	q := Query{From: month, To: now}
	if !now.After(month) {
		q.To = month.Add(time.Minute) // the month's first instant: its first minute, still empty
	}
	q.KeyIDs = sc.keys
	tot, err := g.cfg.Client.Total(ctx, q)
	if err != nil {
		g.mu.Lock()
		g.failures++
		g.lastErr = err.Error()
		g.mu.Unlock()
		g.cfg.Logger.Error("turnusage: guard: reading usage failed; keeping the last known state", "guard", sc.name, "error", err.Error())
		return err
	}
	s := GuardState{Month: month, EgressBytes: tot.EgressBytes, CheckedAt: now}
	if g.cfg.IdentifierDailyCap > 0 {
		if err := g.heavy(ctx, &s, q, now); err != nil {
			g.mu.Lock()
			g.failures++
			g.lastErr = err.Error()
			s.Day, s.Heavy = g.state.Day, g.state.Heavy // keep the last known list
			g.mu.Unlock()
			g.cfg.Logger.Error("turnusage: guard: reading the heaviest identifiers failed; keeping the last known ones", "guard", sc.name, "error", err.Error())
		}
	}
	g.mu.Lock()
	g.lastErr = ""
	g.mu.Unlock()
	g.adopt(s, sc.name)
	if g.cfg.Store != nil {
		if err := g.cfg.Store.SaveGuardState(ctx, sc.name, s); err != nil {
			g.cfg.Logger.Warn("turnusage: guard: saving the shared state failed", "guard", sc.name, "error", err.Error())
		}
	}
	return nil
}

// heavy fills s.Day and s.Heavy with one Top query over today.
func (g *Guard) heavy(ctx context.Context, s *GuardState, q Query, now time.Time) error {
	day := now.UTC().Truncate(24 * time.Hour)
	q.From, q.To, q.By = day, now, []Dimension{ByIdentifier}
	if !now.After(day) {
		q.To = day.Add(time.Minute)
	}
	rows, err := g.cfg.Client.Top(ctx, q, g.cfg.HeavyTopN)
	if err != nil {
		return err
	}
	s.Day, s.Heavy = day, nil
	for _, r := range rows {
		if r.CustomIdentifier != "" && r.EgressBytes >= g.cfg.IdentifierDailyCap {
			s.Heavy = append(s.Heavy, r.CustomIdentifier)
		}
	}
	return nil
}

// HeavyIdentifier reports whether customIdentifier's egress today (UTC) had reached
// GuardConfig.IdentifierDailyCap at the last poll. It is false without a cap, and at a new day.
func (g *Guard) HeavyIdentifier(customIdentifier string) bool {
	if g.cfg.IdentifierDailyCap == 0 || customIdentifier == "" {
		return false
	}
	today := g.cfg.Now().UTC().Truncate(24 * time.Hour)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state.Day.Equal(today) && slices.Contains(g.state.Heavy, customIdentifier)
}

// adopt takes s, read for the scope named name, when it is newer than what the Guard knows of
// that scope, and logs a change of status. A state of the scope in use replaces one of a scope
// Follow has since widened, whatever their times; one of a narrower scope (a poll that began
// before Follow) is dropped, unless the Guard knows nothing yet.
func (g *Guard) adopt(s GuardState, name string) {
	g.mu.Lock()
	switch {
	case !g.known:
	case name != g.scope.name:
		g.mu.Unlock()
		return
	case name == g.stateScope && s.CheckedAt.Before(g.state.CheckedAt):
		g.mu.Unlock()
		return
	}
	g.state, g.known, g.stateScope = s, true, name
	g.mu.Unlock()
	g.announce()
}

// announce logs the status when it changed since it was last logged.
func (g *Guard) announce() {
	st := g.Stats()
	g.mu.Lock()
	changed := st.Status != g.announced
	g.announced = st.Status
	g.mu.Unlock()
	if !changed {
		return
	}
	attrs := []any{"guard", g.currentScope().name, "egress_bytes", st.EgressBytes, "budget_bytes", st.Budget}
	switch st.Status {
	case GuardWarning:
		g.cfg.Logger.Warn(fmt.Sprintf("turnusage: guard: TURN egress has reached %.0f%% of the monthly budget", g.cfg.WarnAt*100), attrs...)
	case GuardOverBudget:
		g.cfg.Logger.Error("turnusage: guard: TURN egress is over the monthly budget", attrs...)
	case GuardOK:
		g.cfg.Logger.Info("turnusage: guard: TURN egress is within the budget", attrs...)
	}
}

// Stats returns the Guard's state now. A state of an earlier month counts as no egress yet.
func (g *Guard) Stats() GuardStats {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := GuardStats{Budget: g.cfg.Budget, PollFailures: g.failures, LastError: g.lastErr, CheckedAt: g.state.CheckedAt}
	switch {
	case !g.known:
		st.Status = GuardUnknown
		return st
	case g.state.Month.Before(monthStart(now)):
		st.Status = GuardOK
		return st
	}
	st.EgressBytes = g.state.EgressBytes
	if g.state.Day.Equal(now.UTC().Truncate(24 * time.Hour)) {
		st.Heavy = len(g.state.Heavy)
	}
	switch {
	case st.EgressBytes >= g.cfg.Budget:
		st.Status = GuardOverBudget
	case float64(st.EgressBytes) >= g.cfg.WarnAt*float64(g.cfg.Budget):
		st.Status = GuardWarning
	default:
		st.Status = GuardOK
	}
	return st
}

// Status returns Stats().Status.
func (g *Guard) Status() GuardStatus { return g.Stats().Status }

// OverBudget reports whether TURN should be withheld: the month's egress has reached the budget.
// It is false while nothing is known, so a failing analytics API never blocks serving.
func (g *Guard) OverBudget() bool { return g.Status() == GuardOverBudget }

// Run polls once now and then every Every until ctx ends, returning ctx's error. Failed polls are
// logged and counted; they do not stop it.
func (g *Guard) Run(ctx context.Context) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, g.cfg.Every)
		g.Poll(pctx)
		cancel()
		g.announce() // a month that rolled over shows up here, before the next answer
		t := time.NewTimer(g.cfg.Every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// MemoryGuardStore is a GuardStore for the Guards of one process.
type MemoryGuardStore struct {
	mu     sync.Mutex
	states map[string]GuardState
}

// NewMemoryGuardStore returns an empty MemoryGuardStore.
func NewMemoryGuardStore() *MemoryGuardStore {
	return &MemoryGuardStore{states: make(map[string]GuardState)}
}

// LoadGuardState implements GuardStore.
func (m *MemoryGuardStore) LoadGuardState(_ context.Context, name string) (GuardState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.states[name]
	return s, ok, nil
}

// SaveGuardState implements GuardStore.
func (m *MemoryGuardStore) SaveGuardState(_ context.Context, name string, s GuardState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.states[name]; !ok || s.CheckedAt.After(old.CheckedAt) {
		m.states[name] = s
	}
	return nil
}
