package turnusage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

const keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestUsageGroupsAndTotals(t *testing.T) {
	srv, c, tr := setup(t, nil)
	now := time.Now().UTC().Truncate(time.Hour)
	h1, h2 := now.Add(-2*time.Hour), now.Add(-time.Hour)
	srv.RecordUsage(h1.Add(time.Minute), keyA, "u1", "alice", 1000, 10)
	srv.RecordUsage(h1.Add(30*time.Minute), keyA, "u2", "alice", 500, 5)
	srv.RecordUsage(h2.Add(5*time.Minute), keyB, "u3", "bob", 7000, 70)
	srv.RecordUsage(now.Add(-3*time.Hour), keyB, "u3", "bob", 1, 1) // before the range
	ctx := context.Background()

	rep, err := c.Usage(ctx, turnusage.Query{From: h1, To: now, By: []turnusage.Dimension{turnusage.ByIdentifier}})
	if err != nil {
		t.Fatal(err)
	}
	want := []turnusage.Row{
		{CustomIdentifier: "bob", EgressBytes: 7000, IngressBytes: 70},
		{CustomIdentifier: "alice", EgressBytes: 1500, IngressBytes: 15},
	}
	if d := cmp.Diff(want, rep.Rows); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	if rep.Totals != (turnusage.Totals{EgressBytes: 8500, IngressBytes: 85}) {
		t.Errorf("totals = %+v", rep.Totals)
	}

	rep, err = c.Usage(ctx, turnusage.Query{From: h1, To: now, Every: time.Hour, By: []turnusage.Dimension{turnusage.ByKey}})
	if err != nil {
		t.Fatal(err)
	}
	want = []turnusage.Row{
		{Time: h1, KeyID: keyA, EgressBytes: 1500, IngressBytes: 15},
		{Time: h2, KeyID: keyB, EgressBytes: 7000, IngressBytes: 70},
	}
	if d := cmp.Diff(want, rep.Rows); d != "" {
		t.Errorf("hourly rows (-want +got):\n%s", d)
	}

	tot, err := c.Total(ctx, turnusage.Query{From: h1, To: now, CustomIdentifiers: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if tot != (turnusage.Totals{EgressBytes: 1500, IngressBytes: 15}) {
		t.Errorf("alice's total = %+v", tot)
	}
	top, err := c.Top(ctx, turnusage.Query{From: h1, To: now, By: []turnusage.Dimension{turnusage.ByUsername}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].Username != "u3" {
		t.Errorf("top = %+v, want u3 alone", top)
	}
	if s := tr.Seen(); s["UsageSettings"] != 1 || s["UsageGroups"] != 3 || s["UsageTotal"] != 1 {
		t.Errorf("queries seen = %v: the settings are read once, then one query per call", s)
	}
}

// A range longer than maxDuration is split, and so is a page that comes back full; rows of the
// parts merge into the same answer as one big query would give.
func TestUsageSplitsRangesAndFullPages(t *testing.T) {
	srv, c, tr := setup(t, []turntest.Option{turntest.WithAnalyticsLimits(time.Hour, 0, 2)})
	now := time.Now().UTC().Truncate(time.Minute)
	from := now.Add(-3 * time.Hour)
	var want turnusage.Totals
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		for j := range 3 {
			at := from.Add(time.Duration(j)*time.Hour + time.Duration(i*7)*time.Minute)
			srv.RecordUsage(at, keyA, "u-"+id, id, uint64(100*(i+1)), uint64(i+1))
			want.EgressBytes += uint64(100 * (i + 1))
			want.IngressBytes += uint64(i + 1)
		}
	}
	var calls, lastPlanned int
	rep, err := c.Usage(context.Background(), turnusage.Query{From: from, To: now, By: []turnusage.Dimension{turnusage.ByIdentifier},
		Progress: func(done, planned int) { calls++; lastPlanned = planned }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 5 || rep.Rows[0].CustomIdentifier != "e" || rep.Rows[0].EgressBytes != 1500 {
		t.Errorf("rows = %+v, want 5 identifiers, e first with 1500 bytes", rep.Rows)
	}
	if rep.Totals != want {
		t.Errorf("totals = %+v, want %+v", rep.Totals, want)
	}
	if rep.Queries <= 3 || calls != rep.Queries || lastPlanned != rep.Queries {
		t.Errorf("queries = %d, progress calls %d, last planned %d: want more than 3 (3 hours, pages of 2) and one call each", rep.Queries, calls, lastPlanned)
	}
	if got := tr.Seen()["UsageGroups"]; got != rep.Queries {
		t.Errorf("the fake saw %d queries, the report says %d", got, rep.Queries)
	}
	tot, err := c.Total(context.Background(), turnusage.Query{From: from, To: now})
	if err != nil {
		t.Fatal(err)
	}
	if tot != want {
		t.Errorf("Total = %+v, want %+v", tot, want)
	}
}

func TestUsageRefusesBadQueries(t *testing.T) {
	_, c, tr := setup(t, nil)
	now := time.Now()
	for name, q := range map[string]turnusage.Query{
		"no range":       {},
		"reversed":       {From: now, To: now.Add(-time.Hour)},
		"bad dimension":  {From: now.Add(-time.Hour), To: now, By: []turnusage.Dimension{"colo"}},
		"bad bucket":     {From: now.Add(-time.Hour), To: now, Every: 2 * time.Hour},
		"empty identity": {From: now.Add(-time.Hour), To: now, CustomIdentifiers: []string{""}},
	} {
		_, err := c.Usage(context.Background(), q)
		if !errors.Is(err, turn.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := len(tr.Seen()); n != 0 {
		t.Errorf("bad queries sent %d requests", n)
	}
}

// The fake refuses a range over its maxDuration as Cloudflare does, and the client reports it as a
// bad request.
func TestOverlongRangeRefusedByTheServer(t *testing.T) {
	_, c, _ := setup(t, []turntest.Option{turntest.WithAnalyticsLimits(time.Hour, 0, 0)},
		turnusage.WithLimits(turnusage.Limits{MaxDuration: 48 * time.Hour, MaxPageSize: 100}))
	now := time.Now()
	_, err := c.Total(context.Background(), turnusage.Query{From: now.Add(-2 * time.Hour), To: now})
	var ue *turnusage.Error
	if !errors.Is(err, turn.ErrBadRequest) || !errors.As(err, &ue) || len(ue.Errors) != 1 {
		t.Fatalf("err = %v, want one GraphQL error matching ErrBadRequest", err)
	}
	if ue.StatusCode != 400 || ue.Errors[0].Path[len(ue.Errors[0].Path)-1] != "callsTurnUsageAdaptiveGroups" {
		t.Errorf("error = %+v, want 400 and a path ending in the dataset", ue)
	}
}
