package turntest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

type gqlAnswer struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// post sends one GraphQL query to the fake as curl would.
func post(t *testing.T, srv *turntest.Server, token, query string, vars map[string]any) (int, gqlAnswer) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, srv.APIBaseURL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a gqlAnswer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return res.StatusCode, a
}

func TestAnalyticsRefusesLikeCloudflare(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	acct := srv.AccountID()
	now := time.Now().UTC()
	rng := func(d time.Duration) string {
		return `datetimeMinute_geq: "` + now.Add(-d).Format(time.RFC3339) + `", datetimeMinute_lt: "` + now.Format(time.RFC3339) + `"`
	}
	for _, tc := range []struct {
		name, query string
		status      int
		message     string
	}{
		{"unknown field", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1) { sum { bogusBytes } } } } }`,
			200, `Cannot query field "bogusBytes"`},
		{"unknown filter", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {colo: "SJC"}) { count } } } }`,
			200, `"colo"`},
		{"bad time", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {datetime_geq: "yesterday"}) { count } } } }`,
			400, "error parsing args"},
		{"over-long range", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {` + rng(40*24*time.Hour) + `}) { count } } } }`,
			400, "query time range is too large"},
		{"no range", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1) { count } } } }`,
			400, "query time range is too large"},
		{"limit too big", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 10001, filter: {` + rng(time.Hour) + `}) { count } } } }`,
			400, "limit must be positive number and not greater than 10000"},
		{"order by an unselected dimension", `{ viewer { accounts(filter: {accountTag: "` + acct + `"}) { callsTurnUsageAdaptiveGroups(limit: 1, orderBy: [keyId_ASC], filter: {` + rng(time.Hour) + `}) { count } } } }`,
			400, "not one of the selected dimensions"},
		{"malformed account", `{ viewer { accounts(filter: {accountTag: "not/an/account"}) { settings { callsTurnUsageAdaptiveGroups { enabled } } } } }`,
			200, "not authorized for that account"},
		{"syntax", `{ viewer {`, 200, "Expected"},
	} {
		status, a := post(t, srv, srv.Token(), tc.query, nil)
		if status != tc.status || len(a.Errors) != 1 || !strings.Contains(a.Errors[0].Message, tc.message) {
			t.Errorf("%s: %d %+v, want %d and one error containing %q", tc.name, status, a.Errors, tc.status, tc.message)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, a.Errors[0].Extensions["timestamp"].(string)); err != nil {
			t.Errorf("%s: extensions.timestamp: %v", tc.name, err)
		}
	}
	if status, a := post(t, srv, "", `{ viewer { __typename } }`, nil); status != 401 || len(a.Errors) != 1 {
		t.Errorf("no token: %d %+v, want 401", status, a)
	}
	if status, a := post(t, srv, "wrong", `{ viewer { __typename } }`, nil); status != 403 || len(a.Errors) != 1 {
		t.Errorf("wrong token: %d %+v, want 403", status, a)
	}
}

// Filters (AND, OR, _in, _neq), grouping, ordering and limits run on the recorded counters; an
// alias and a fragment are answered as GraphQL requires.
func TestAnalyticsExecutes(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	now := time.Now().UTC().Truncate(time.Minute)
	const k = "0123456789abcdef0123456789abcdef"
	srv.RecordUsage(now.Add(-50*time.Minute), k, "u1", "alice", 100, 1)
	srv.RecordUsage(now.Add(-40*time.Minute), k, "u2", "bob", 300, 3)
	srv.RecordUsage(now.Add(-30*time.Minute), k, "u3", "carol", 200, 2)
	srv.RecordUsage(now.Add(-20*time.Minute), k, "u3", "carol", 50, 5)
	q := `query Q($acct: string!, $from: Time!, $to: Time!, $ids: [string!]) {
	  viewer { usage: accounts(filter: {accountTag: $acct}) {
	    callsTurnUsageAdaptiveGroups(limit: 2, orderBy: [sum_egressBytes_DESC],
	      filter: {datetimeMinute_geq: $from, datetimeMinute_lt: $to, OR: [{customIdentifier_in: $ids}, {username: "u3"}], customIdentifier_neq: "bob"}) {
	      ...F
	      n: count
	    } } } }
	fragment F on AccountCallsTurnUsageAdaptiveGroups { dimensions { who: customIdentifier } sum { egressBytes ingressBytes } }`
	status, a := post(t, srv, srv.Token(), q, map[string]any{"acct": srv.AccountID(), "from": now.Add(-time.Hour).Format(time.RFC3339),
		"to": now.Format(time.RFC3339), "ids": []string{"alice", "bob"}})
	if status != 200 || a.Errors != nil {
		t.Fatalf("%d %+v", status, a.Errors)
	}
	want := `{"viewer":{"usage":[{"callsTurnUsageAdaptiveGroups":[` +
		`{"dimensions":{"who":"carol"},"sum":{"egressBytes":250,"ingressBytes":7},"n":2},` +
		`{"dimensions":{"who":"alice"},"sum":{"egressBytes":100,"ingressBytes":1},"n":1}]}]}}`
	if string(a.Data) != want {
		t.Errorf("data =\n%s\nwant\n%s", a.Data, want)
	}
}

// Usage of a key in another account is not visible from this one.
func TestAnalyticsIsPerAccount(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	other := "ffffffffffffffffffffffffffffffff"
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{AccountID: other})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	srv.RecordUsage(now.Add(-time.Minute), key.ID, "u", "x", 10, 1)
	for acct, want := range map[string]uint64{srv.AccountID(): 0, other: 10} {
		tc, err := turn.NewClient(append(srv.ClientOptions(), turn.WithAccountID(acct))...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := turnusage.NewClient(tc)
		if err != nil {
			t.Fatal(err)
		}
		tot, err := c.Total(context.Background(), turnusage.Query{From: now.Add(-time.Hour), To: now})
		if err != nil || tot.EgressBytes != want {
			t.Errorf("account %s: %+v %v, want egress %d", acct, tot, err, want)
		}
	}
}

// Queries small in bytes but huge in work are refused before they run: fragments that fan out
// into millions of fields, and input nested thousands of levels deep (which the parser handles in
// quadratic time).
func TestAnalyticsRefusesCostlyQueries(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	var fanOut strings.Builder
	fanOut.WriteString("{ viewer { ...F0 } }\n")
	for i := range 7 {
		fmt.Fprintf(&fanOut, "fragment F%d on viewer { %s}\n", i, strings.Repeat(fmt.Sprintf("...F%d ", i+1), 8))
	}
	fanOut.WriteString("fragment F7 on viewer { __typename }\n")
	deep := `{ viewer { accounts(filter: {accountTag: "` + srv.AccountID() + `"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {AND: ` +
		strings.Repeat("[{AND: ", 3000) + `[]` + strings.Repeat("}]", 3000) + `}) { count } } } }`
	for name, q := range map[string]string{"fragments fanning out to 2M fields": fanOut.String(), "3000-deep filter": deep} {
		status, a := post(t, srv, srv.Token(), q, nil)
		if status != http.StatusOK || len(a.Errors) == 0 || !strings.Contains(a.Errors[0].Message, "over") && !strings.Contains(a.Errors[0].Message, "more than") {
			t.Errorf("%s: %d %+v, want a GraphQL error naming the bound", name, status, a.Errors)
		}
	}
}
