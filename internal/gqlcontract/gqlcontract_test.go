package gqlcontract_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/internal/gqlcontract"
)

type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestTransportReports(t *testing.T) {
	var answer string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, answer)
	}))
	t.Cleanup(ts.Close)
	const ok = `query S($a: string!) { viewer { accounts(filter: {accountTag: $a}) { settings { callsTurnUsageAdaptiveGroups { maxPageSize } } } } }`
	for _, tc := range []struct {
		name, body, answer, want string
	}{
		{"valid", `{"query": "` + ok + `", "variables": {"a": "x"}, "operationName": "S"}`,
			`{"data":{"viewer":{"accounts":[{"settings":{"callsTurnUsageAdaptiveGroups":{"maxPageSize":10000}}}]}}}`, ""},
		{"unknown field", `{"query": "{ viewer { nope } }"}`, `{}`, "not valid against analytics.graphql"},
		{"missing variable", `{"query": "` + ok + `", "operationName": "S"}`, `{}`, "variables"},
		{"bad Time", `{"query": "query T($t: Time!) { viewer { accounts(filter: {accountTag: \"a\"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {datetime_geq: $t}) { count } } } }", "variables": {"t": "noon"}}`,
			`{}`, "not an RFC 3339 Time"},
		{"answer lacks a field", `{"query": "` + ok + `", "variables": {"a": "x"}, "operationName": "S"}`,
			`{"data":{"viewer":{"accounts":[{"settings":{"callsTurnUsageAdaptiveGroups":{}}}]}}}`, "maxPageSize is missing"},
		{"answer has a negative uint64", `{"query": "` + ok + `", "variables": {"a": "x"}, "operationName": "S"}`,
			`{"data":{"viewer":{"accounts":[{"settings":{"callsTurnUsageAdaptiveGroups":{"maxPageSize":-1}}}]}}}`, "not a uint64"},
	} {
		rec := &recorder{}
		answer = tc.answer
		c := &http.Client{Transport: &gqlcontract.Transport{TB: rec}}
		res, err := c.Post(ts.URL+"/client/v4/graphql", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		switch {
		case tc.want == "" && len(rec.errs) > 0:
			t.Errorf("%s: reported %v", tc.name, rec.errs)
		case tc.want != "" && (len(rec.errs) != 1 || !strings.Contains(rec.errs[0], tc.want)):
			t.Errorf("%s: reported %v, want one report containing %q", tc.name, rec.errs, tc.want)
		}
	}
}
