package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/relaytest"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

const usageKey = "0123456789abcdef0123456789abcdef"

func usageFake(t *testing.T, opts ...turntest.Option) *turntest.Server {
	t.Helper()
	srv := turntest.NewServer(opts...)
	t.Cleanup(srv.Close)
	now := time.Now()
	srv.RecordUsage(now.Add(-2*time.Hour), usageKey, "u1", "alice", 1_500_000, 20_000)
	srv.RecordUsage(now.Add(-90*time.Minute), usageKey, "u2", "alice", 500_000, 10_000)
	srv.RecordUsage(now.Add(-time.Hour), usageKey, "u3", "=bob", 3_000_000_000, 1_000)
	return srv
}

func TestUsageCommandTable(t *testing.T) {
	srv := usageFake(t)
	r := cfturn(t, srv, nil, "usage", "--since", "3h", "--by", "identifier", "--free-tier", "1GB", "--price-per-gb", "0.10")
	r.check(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header, two rows, a total and the cost line:\n%s", r.stdout)
	}
	for i, want := range [][]string{{"IDENTIFIER", "EGRESS", "INGRESS"}, {"=bob", "3.00 GB", "1.00 kB"}, {"alice", "2.00 MB", "30.0 kB"}, {"TOTAL", "3.00 GB", "31.0 kB"}} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") &&
			!(i > 0 && got[0] == want[0] && strings.Join(got[1:], " ") == strings.Join(want[1:], " ")) {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], want)
		}
	}
	// 3.002 GB − 1 GB free = 2.002 GB at $0.10.
	if !strings.Contains(lines[4], "Estimated cost: $0.20 ") || !strings.Contains(lines[4], "estimate") {
		t.Errorf("cost line = %q", lines[4])
	}
	if r.stderr != "" {
		t.Errorf("one query printed progress: %q", r.stderr)
	}
}

func TestUsageCommandJSONCSVAndOneCustomer(t *testing.T) {
	srv := usageFake(t)
	r := cfturn(t, srv, nil, "usage", "--since", "3h", "--by", "identifier,username", "--json")
	r.check(t, 0)
	var out usageJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(out.Rows) != 3 || out.Totals.EgressBytes != 3_002_000_000 || out.Totals.IngressBytes != 31_000 || out.Queries != 1 || out.EstimatedCostUSD != 0 {
		t.Errorf("json = %+v", out)
	}

	r = cfturn(t, srv, nil, "usage", "--since", "3h", "--by", "identifier", "--csv")
	r.check(t, 0)
	want := "identifier,egress_bytes,ingress_bytes\n'=bob,3000000000,1000\nalice,2000000,30000\n"
	if r.stdout != want {
		t.Errorf("csv =\n%s\nwant\n%s", r.stdout, want)
	}

	r = cfturn(t, srv, nil, "usage", "--since", "3h", "--identifier", "alice", "--json")
	r.check(t, 0)
	out = usageJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rows) != 1 || out.Rows[0].CustomIdentifier != "alice" || out.Totals != (turnusage.Totals{EgressBytes: 2_000_000, IngressBytes: 30_000}) || out.Queries != 1 {
		t.Errorf("one customer = %+v", out)
	}
	// --since 3h is 3 hours of whole minutes, ending on the minute after now.
	if d := out.To.Sub(out.From); d != 3*time.Hour || out.To.Truncate(time.Minute) != out.To || time.Until(out.To) > time.Minute {
		t.Errorf("--since 3h covered %s to %s (%v), want 3 hours ending at the minute after now", out.From, out.To, d)
	}
	if got := srv.Requests()[string(turntest.OpGraphQL)]; got != 6 {
		t.Errorf("the fake saw %d queries, want 6: settings and one query for each of three runs", got)
	}
	// A duration that is not whole minutes is rounded up to them.
	r = cfturn(t, srv, nil, "usage", "--since", "90s", "--json")
	r.check(t, 0)
	out = usageJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if d := out.To.Sub(out.From); d != 2*time.Minute {
		t.Errorf("--since 90s covered %v, want 2 minutes", d)
	}
}

func TestUsageCommandProgressAndBuckets(t *testing.T) {
	srv := usageFake(t, turntest.WithAnalyticsLimits(time.Hour, 0, 0))
	r := cfturn(t, srv, nil, "usage", "--since", "3h", "--every", "1h", "--by", "key")
	r.check(t, 0)
	// Not a terminal: the count once, no carriage returns.
	if r.stderr != "cfturn: usage: 3 queries\n" {
		t.Errorf("stderr = %q, want one line counting the 3 queries of 3 hours at 1 hour a query", r.stderr)
	}
	if n := strings.Count(r.stdout, usageKey); n < 2 {
		t.Errorf("want a row per hour with usage:\n%s", r.stdout)
	}
}

func TestUsageCommandErrors(t *testing.T) {
	srv := usageFake(t)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"usage", "--since", "yesterday"}, nil, 2, `--since "yesterday" is not a positive duration`},
		{[]string{"usage", "--from", "last week"}, nil, 2, "neither an RFC 3339 time"},
		{[]string{"usage", "--since", "1h", "--from", "2026-11-01"}, nil, 2, "pass one"},
		{[]string{"usage", "--by", "colo"}, nil, 2, `--by "colo"`},
		{[]string{"usage", "--every", "2h"}, nil, 2, "1m, 5m, 15m, 1h or 24h"},
		{[]string{"usage", "--identifier", "a", "--by", "key"}, nil, 2, "--identifier gives one total"},
		{[]string{"usage", "--free-tier", "lots"}, nil, 2, "--free-tier"},
		{[]string{"usage", "--json", "--csv"}, nil, 2, "pass one"},
		{[]string{"usage"}, map[string]string{"CLOUDFLARE_API_TOKEN": "some-wrong-token-of-enough-length"}, 1, "Account Analytics Read"},
		{[]string{"usage"}, map[string]string{"CLOUDFLARE_API_TOKEN": ""}, 2, "no API token: set CLOUDFLARE_API_TOKEN (reading usage needs one with Account Analytics Read)"},
		{[]string{"usage"}, map[string]string{"CLOUDFLARE_ACCOUNT_ID": ""}, 2, "cfturn: no account ID: pass --account-id or set CLOUDFLARE_ACCOUNT_ID\n"},
	} {
		r := cfturn(t, srv, tc.env, tc.args...)
		r.check(t, tc.code)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr = %q, want %q", tc.args, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "some-wrong-token") {
			t.Errorf("%v: the token is in the error: %s", tc.args, r.stderr)
		}
	}
}

// Bytes relayed through the fake's TURN relay come back from cfturn usage exactly: what the client
// sent is ingress, what the peer sent back is egress.
func TestUsageCommandReportsRelayedBytes(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour, CustomIdentifier: "room-1"})
	if err != nil {
		t.Fatal(err)
	}
	sent, received := relaytest.Exchange(t, relay.TCPAddr, ice.Servers[1].Username, ice.Servers[1].Credential.Reveal(), 7, 333, 2)

	r := cfturn(t, srv, nil, "usage", "--since", "1h", "--by", "identifier", "--json")
	r.check(t, 0)
	var out usageJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	want := turnusage.Row{CustomIdentifier: "room-1", EgressBytes: uint64(received), IngressBytes: uint64(sent)}
	if len(out.Rows) != 1 || out.Rows[0] != want {
		t.Errorf("rows = %+v, want [%+v]", out.Rows, want)
	}
}

func TestUsageCommandDaysAndDatacenters(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	srv.RecordUsage(today.Add(-20*time.Hour), usageKey, "u1", "a", 1000, 1)
	srv.RecordUsage(today.Add(time.Minute), usageKey, "u1", "a", 3000, 3)
	from := today.Add(-24 * time.Hour).Format(time.DateOnly)
	r := cfturn(t, srv, nil, "usage", "--from", from, "--to", today.Add(2*time.Minute).Format(time.RFC3339), "--every", "1d", "--by", "datacenter", "--csv")
	r.check(t, 0)
	want := "time,datacenter,egress_bytes,ingress_bytes\n" +
		today.Add(-24*time.Hour).Format(time.RFC3339) + ",\"" + turntest.FakeDatacenterCity + ", " + turntest.FakeDatacenterCountry + "\",1000,1\n" +
		today.Format(time.RFC3339) + ",\"" + turntest.FakeDatacenterCity + ", " + turntest.FakeDatacenterCountry + "\",3000,3\n"
	if r.stdout != want {
		t.Errorf("csv =\n%s\nwant\n%s", r.stdout, want)
	}
}
