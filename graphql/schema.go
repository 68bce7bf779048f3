// Package graphql embeds graphql/analytics.graphql, the hand-maintained part of Cloudflare's GraphQL
// Analytics API schema that cfturn uses, and graphql/operations.graphql, the queries cfturn sends,
// and loads and checks them with gqlparser.
//
// gen/analytics is generated from both files (genqlient); the fake in pkg/turn/turntest validates
// and executes queries against the schema, and tests validate every query they send with
// Validate. The client (pkg/turn/turnusage) does not import this package.
package graphql

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// SchemaSDL is analytics.graphql exactly as committed.
//
//go:embed analytics.graphql
var SchemaSDL string

// Operations is operations.graphql exactly as committed.
//
//go:embed operations.graphql
var Operations string

var loaded = sync.OnceValues(func() (*ast.Schema, error) {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "analytics.graphql", Input: SchemaSDL})
	if err != nil {
		return nil, fmt.Errorf("graphql: analytics.graphql is not a valid schema: %w", err)
	}
	return s, nil
})

// Schema returns the parsed schema. It is shared: callers must not change it.
func Schema() (*ast.Schema, error) { return loaded() }

// Parse parses query and validates it against the schema (fields, arguments, types, directives,
// variables' declarations), returning the document or every problem found.
func Parse(query string) (*ast.QueryDocument, gqlerror.List) {
	s, err := Schema()
	if err != nil {
		return nil, gqlerror.List{gqlerror.Wrap(err)}
	}
	return gqlparser.LoadQuery(s, query)
}
