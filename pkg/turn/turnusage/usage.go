package turnusage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cfturn/cfturn/gen/analytics"
)

// Limits are the TURN usage dataset's limits for the account, from the settings node.
type Limits struct {
	Enabled      bool          // the account may query the dataset
	MaxDuration  time.Duration // the longest range one query may cover
	NotOlderThan time.Duration // how far back data is kept
	MaxPageSize  int           // the most rows one query may return
}

// Dimension is something usage can be grouped by besides time.
type Dimension string

// The dimensions of Query.By.
const (
	ByKey        Dimension = "key"        // the TURN key ID
	ByIdentifier Dimension = "identifier" // the customIdentifier the credential was minted with
	ByUsername   Dimension = "username"   // the ICE credential's username
	ByDatacenter Dimension = "datacenter" // the Cloudflare data centre: city and country
)

// Dimensions lists every Dimension, in the order columns are shown.
var Dimensions = []Dimension{ByKey, ByIdentifier, ByUsername, ByDatacenter}

// Buckets are the time buckets the dataset groups by, for Query.Every.
var Buckets = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 24 * time.Hour}

// Query selects usage: a range, optional filters, and how to group it.
type Query struct {
	// From and To are the range, [From, To), rounded out to whole minutes (UTC). Required.
	From, To time.Time
	// KeyIDs, CustomIdentifiers and Usernames keep only usage of these; empty keeps all.
	KeyIDs, CustomIdentifiers, Usernames []string
	// By groups the rows by these dimensions; empty gives one row for the whole range.
	By []Dimension
	// Every groups the rows by a time bucket too: one of Buckets (a day is a UTC date), or 0.
	Every time.Duration
	// Progress, when set, is called after each query with how many were sent and how many are
	// planned so far (the plan grows when a page comes back full and its range is split).
	Progress func(done, planned int)
}

// Row is the usage of one group. Fields of dimensions not grouped by are empty.
type Row struct {
	Time              time.Time `json:"time,omitzero"` // the bucket's start (UTC), with Query.Every
	KeyID             string    `json:"keyId,omitempty"`
	CustomIdentifier  string    `json:"customIdentifier,omitempty"`
	Username          string    `json:"username,omitempty"`
	DatacenterCity    string    `json:"datacenterCity,omitempty"`
	DatacenterCountry string    `json:"datacenterCountry,omitempty"`
	EgressBytes       uint64    `json:"egressBytes"`  // sent by Cloudflare to clients: billed
	IngressBytes      uint64    `json:"ingressBytes"` // received by Cloudflare from clients
}

// Totals sums egress and ingress.
type Totals struct {
	EgressBytes  uint64 `json:"egressBytes"`
	IngressBytes uint64 `json:"ingressBytes"`
}

// Report is the usage of a Query.
type Report struct {
	From, To time.Time // the range after rounding
	Rows     []Row     // by time, then egress (largest first), then the dimensions
	Totals   Totals    // the rows' sums
	Queries  int       // usage queries it took (not counting the settings query of a first call)
}

// span is a validated range in whole minutes.
func (q *Query) span() (time.Time, time.Time, error) {
	if q.From.IsZero() || q.To.IsZero() {
		return time.Time{}, time.Time{}, invalid("Query.From and Query.To are required (e.g. the last 24 hours: From: now.Add(-24*time.Hour), To: now)")
	}
	from := q.From.UTC().Truncate(time.Minute)
	to := q.To.UTC()
	if r := to.Truncate(time.Minute); !r.Equal(to) {
		to = r.Add(time.Minute)
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, invalid("Query.From (%s) must be before Query.To (%s)", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	return from, to, nil
}

func (q *Query) check() error {
	for _, d := range q.By {
		if !slices.Contains(Dimensions, d) {
			return invalid("Query.By: unknown dimension %q: use %s", d, dimensionNames())
		}
	}
	if q.Every != 0 && !slices.Contains(Buckets, q.Every) {
		return invalid("Query.Every: %v is not a bucket the dataset has: use 1m, 5m, 15m, 1h or 24h", q.Every)
	}
	for name, list := range map[string][]string{"KeyIDs": q.KeyIDs, "CustomIdentifiers": q.CustomIdentifiers, "Usernames": q.Usernames} {
		if slices.Contains(list, "") {
			return invalid("Query.%s holds an empty value", name)
		}
		if len(list) > 100 {
			return invalid("Query.%s holds %d values; at most 100 fit in one query", name, len(list))
		}
	}
	return nil
}

func dimensionNames() string {
	var s []string
	for _, d := range Dimensions {
		s = append(s, string(d))
	}
	return strings.Join(s, ", ")
}

// Limits returns the dataset's limits for the account, reading the settings node on the first
// call (one query) and caching what it read.
func (c *Client) Limits(ctx context.Context) (Limits, error) {
	c.mu.Lock()
	l := c.limits
	c.mu.Unlock()
	if l != nil {
		return *l, nil
	}
	if err := c.ready(); err != nil {
		return Limits{}, err
	}
	res, err := analytics.UsageSettings(ctx, gql{c}, c.account)
	if err != nil {
		return Limits{}, err
	}
	if len(res.Viewer.Accounts) == 0 {
		return Limits{}, &Error{Operation: "UsageSettings", StatusCode: 200, class: errUnexpected, Excerpt: "no account in the answer"}
	}
	n := res.Viewer.Accounts[0].Settings.CallsTurnUsageAdaptiveGroups
	got := Limits{
		Enabled:      n.Enabled,
		MaxDuration:  time.Duration(min(n.MaxDuration, 1<<33)) * time.Second,
		NotOlderThan: time.Duration(min(n.NotOlderThan, 1<<33)) * time.Second,
		MaxPageSize:  int(min(n.MaxPageSize, 1<<20)),
	}
	if got.MaxDuration < time.Minute || got.MaxPageSize < 1 {
		return Limits{}, &Error{Operation: "UsageSettings", StatusCode: 200, class: errUnexpected,
			Excerpt: fmt.Sprintf("maxDuration %ds and maxPageSize %d leave no query possible", n.MaxDuration, n.MaxPageSize)}
	}
	c.mu.Lock()
	c.limits = &got
	c.mu.Unlock()
	return got, nil
}

// chunks splits [from, to) into ranges no longer than d.
func chunks(from, to time.Time, d time.Duration) [][2]time.Time {
	var out [][2]time.Time
	for s := from; s.Before(to); s = s.Add(d) {
		out = append(out, [2]time.Time{s, minTime(s.Add(d), to)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Total returns egress and ingress over q's range for its filters, ignoring By and Every: the one
// sum Cloudflare advises billing a customer with (filter by CustomIdentifiers). It takes one query
// per MaxDuration of range (one for a month when the dataset's maxDuration covers a month), plus
// the settings query on a Client's first call.
func (c *Client) Total(ctx context.Context, q Query) (Totals, error) {
	from, to, err := q.span()
	if err == nil {
		err = q.check()
	}
	if err == nil {
		err = c.ready()
	}
	if err != nil {
		return Totals{}, err
	}
	lim, err := c.Limits(ctx)
	if err != nil {
		return Totals{}, err
	}
	parts := chunks(from, to, lim.MaxDuration)
	var t Totals
	for i, p := range parts {
		res, err := analytics.UsageTotal(ctx, gql{c}, c.account, p[0], p[1], q.KeyIDs, q.CustomIdentifiers, q.Usernames)
		if err != nil {
			return Totals{}, err
		}
		for _, a := range res.Viewer.Accounts {
			for _, g := range a.CallsTurnUsageAdaptiveGroups {
				t.EgressBytes += g.Sum.EgressBytes
				t.IngressBytes += g.Sum.IngressBytes
			}
		}
		if q.Progress != nil {
			q.Progress(i+1, len(parts))
		}
	}
	return t, nil
}

// Usage returns q's usage grouped as asked, with totals. Ranges longer than the dataset's
// MaxDuration are split; a page that comes back full is split in halves until each half fits (down
// to one minute), and the rows of all parts are merged, so no row is lost to a limit.
func (c *Client) Usage(ctx context.Context, q Query) (*Report, error) {
	from, to, err := q.span()
	if err == nil {
		err = q.check()
	}
	if err == nil {
		err = c.ready()
	}
	if err != nil {
		return nil, err
	}
	lim, err := c.Limits(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{From: from, To: to}
	merged := make(map[Row]*Row)
	todo := chunks(from, to, lim.MaxDuration)
	planned := len(todo)
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		rows, err := c.page(ctx, &q, p[0], p[1], lim.MaxPageSize)
		rep.Queries++
		if err != nil {
			return nil, err
		}
		if len(rows) >= lim.MaxPageSize {
			d := p[1].Sub(p[0])
			if d <= time.Minute {
				return nil, invalid("more than %d groups in the minute from %s: filter by key, identifier or username, or group by less", lim.MaxPageSize, p[0].Format(time.RFC3339))
			}
			mid := p[0].Add((d / 2).Truncate(time.Minute))
			if mid.Equal(p[0]) {
				mid = p[0].Add(time.Minute)
			}
			todo = append([][2]time.Time{{p[0], mid}, {mid, p[1]}}, todo...)
			planned += 2
		} else {
			for _, r := range rows {
				k := r
				k.EgressBytes, k.IngressBytes = 0, 0
				if m := merged[k]; m != nil {
					m.EgressBytes += r.EgressBytes
					m.IngressBytes += r.IngressBytes
				} else {
					r := r
					merged[k] = &r
				}
			}
		}
		if q.Progress != nil {
			q.Progress(rep.Queries, planned)
		}
	}
	for _, r := range merged {
		rep.Rows = append(rep.Rows, *r)
		rep.Totals.EgressBytes += r.EgressBytes
		rep.Totals.IngressBytes += r.IngressBytes
	}
	slices.SortFunc(rep.Rows, func(a, b Row) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(b.EgressBytes, a.EgressBytes), cmp.Compare(b.IngressBytes, a.IngressBytes),
			cmp.Compare(a.KeyID, b.KeyID), cmp.Compare(a.CustomIdentifier, b.CustomIdentifier), cmp.Compare(a.Username, b.Username),
			cmp.Compare(a.DatacenterCountry, b.DatacenterCountry), cmp.Compare(a.DatacenterCity, b.DatacenterCity))
	})
	return rep, nil
}

// Top returns the n groups of q with the most egress over its range (one query; the range must fit
// in the dataset's MaxDuration): the heaviest identities, keys or usernames.
func (c *Client) Top(ctx context.Context, q Query, n int) ([]Row, error) {
	from, to, err := q.span()
	if err == nil {
		err = q.check()
	}
	if err == nil {
		err = c.ready()
	}
	if err != nil {
		return nil, err
	}
	lim, err := c.Limits(ctx)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > lim.MaxPageSize {
		return nil, invalid("Top: n is %d; it must be between 1 and the dataset's page size, %d", n, lim.MaxPageSize)
	}
	if to.Sub(from) > lim.MaxDuration {
		return nil, invalid("Top: the range is %v, longer than the %v one query may cover", to.Sub(from), lim.MaxDuration)
	}
	return c.page(ctx, &q, from, to, n)
}

// page runs one UsageGroups query.
func (c *Client) page(ctx context.Context, q *Query, from, to time.Time, limit int) ([]Row, error) {
	by := func(d Dimension) bool { return slices.Contains(q.By, d) }
	order := []analytics.AccountCallsTurnUsageAdaptiveGroupsOrderBy{"sum_egressBytes_DESC"}
	res, err := analytics.UsageGroups(ctx, gql{c}, c.account, from, to, q.KeyIDs, q.CustomIdentifiers, q.Usernames,
		uint64(limit), order,
		q.Every == time.Minute, q.Every == 5*time.Minute, q.Every == 15*time.Minute, q.Every == time.Hour, q.Every == 24*time.Hour,
		by(ByKey), by(ByIdentifier), by(ByUsername), by(ByDatacenter))
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, a := range res.Viewer.Accounts {
		for _, g := range a.CallsTurnUsageAdaptiveGroups {
			d := g.Dimensions
			r := Row{
				KeyID: d.KeyId, CustomIdentifier: d.CustomIdentifier, Username: d.Username,
				DatacenterCity: d.DatacenterCity, DatacenterCountry: d.DatacenterCountry,
				EgressBytes: g.Sum.EgressBytes, IngressBytes: g.Sum.IngressBytes,
			}
			switch q.Every {
			case time.Minute:
				r.Time = d.DatetimeMinute.UTC()
			case 5 * time.Minute:
				r.Time = d.DatetimeFiveMinutes.UTC()
			case 15 * time.Minute:
				r.Time = d.DatetimeFifteenMinutes.UTC()
			case time.Hour:
				r.Time = d.DatetimeHour.UTC()
			case 24 * time.Hour:
				t, err := time.Parse(time.DateOnly, d.Date)
				if err != nil {
					return nil, &Error{Operation: "UsageGroups", StatusCode: 200, class: errUnexpected, Excerpt: clean("date "+d.Date, excerptLen)}
				}
				r.Time = t
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}
