package turntest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/gen/analytics"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// FuzzGraphQL sends the fake arbitrary queries and variables: every answer is a GraphQL JSON
// answer with data or errors, never a panic or a hang.
func FuzzGraphQL(f *testing.F) {
	const acct = "0123456789abcdef0123456789abcdef"
	now := time.Now().UTC().Format(time.RFC3339)
	hourAgo := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	vars := `{"accountTag":"` + acct + `","since":"` + hourAgo + `","until":"` + now + `","limit":10,"byKey":true,"byMinute":true,"byFiveMinutes":false,"byFifteenMinutes":false,"byHour":false,"byDate":true,"byIdentifier":true,"byUsername":false,"byDatacenter":true,"orderBy":["sum_egressBytes_DESC"]}`
	for _, q := range []string{analytics.UsageGroups_Operation, analytics.UsageTotal_Operation, analytics.UsageSettings_Operation} {
		f.Add(q, vars)
	}
	f.Add(`{ viewer { accounts(filter: {accountTag: "`+acct+`"}) { callsTurnUsageAdaptiveGroups(limit: 3, filter: {OR: [{date_geq: "2026-01-01"}], AND: [{datetimeHour_lt: "`+now+`"}]}) { count avg { concurrentConnectionsFiveMinutes } } } } }`, `{}`)
	f.Add(`query($x: Boolean!) { viewer { __typename ... on viewer @skip(if: $x) { __typename } } }`, `{"x": false}`)
	f.Fuzz(func(t *testing.T, query, variables string) {
		// A fake per input: one fake's 300-queries-per-5-minutes budget would soon answer only 429.
		fake := turntest.New(turntest.WithAccountID(acct))
		fake.RecordUsage(time.Now().Add(-time.Minute), acct, "u", "id", 10, 1)
		var v map[string]any
		if json.Unmarshal([]byte(variables), &v) != nil {
			v = nil
		}
		body, _ := json.Marshal(map[string]any{"query": query, "variables": v})
		req := httptest.NewRequest(http.MethodPost, "/client/v4/graphql", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+fake.Token())
		rec := httptest.NewRecorder()
		fake.Handler().ServeHTTP(rec, req)
		var out struct {
			Data   json.RawMessage   `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%d, not JSON: %v\n%s", rec.Code, err, rec.Body)
		}
		if len(out.Errors) == 0 && (len(out.Data) == 0 || string(out.Data) == "null") {
			t.Fatalf("%d: neither data nor errors: %s", rec.Code, rec.Body)
		}
	})
}
