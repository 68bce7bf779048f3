package graphql_test

import (
	"strings"
	"testing"

	"github.com/cfturn/cfturn/gen/analytics"
	"github.com/cfturn/cfturn/graphql"
)

func TestSchemaLoads(t *testing.T) {
	s, err := graphql.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if s.Types["AccountCallsTurnUsageAdaptiveGroups"] == nil {
		t.Fatal("the dataset's group type is missing")
	}
}

// The generated operations are the committed ones, and each is valid against the schema.
func TestOperationsValidate(t *testing.T) {
	for name, q := range map[string]string{
		"UsageSettings": analytics.UsageSettings_Operation,
		"UsageTotal":    analytics.UsageTotal_Operation,
		"UsageGroups":   analytics.UsageGroups_Operation,
	} {
		if _, errs := graphql.Parse(q); errs != nil {
			t.Errorf("%s: %v", name, errs)
		}
		if !strings.Contains(graphql.Operations, "query "+name+"(") {
			t.Errorf("%s is not in operations.graphql", name)
		}
	}
	if _, errs := graphql.Parse(graphql.Operations); errs != nil {
		t.Errorf("operations.graphql: %v", errs)
	}
}

func TestParseRejects(t *testing.T) {
	for _, q := range []string{
		`{ viewer { accounts(filter: {accountTag: "a"}) { callsTurnUsageAdaptiveGroups(limit: 1) { sum { bogusBytes } } } } }`,
		`{ viewer { accounts(filter: {accountTag: "a"}) { callsTurnUsageAdaptiveGroups(limit: 1, filter: {keyIdd: "x"}) { count } } } }`,
		`{ viewer { accounts(filter: {accountTag: "a"}) { callsTurnUsageAdaptiveGroups { count } } } }`,
		`{ viewer {`,
	} {
		if _, errs := graphql.Parse(q); errs == nil {
			t.Errorf("accepted %s", q)
		}
	}
}
