// Package gqlcontract checks GraphQL Analytics traffic against graphql/analytics.graphql, as
// internal/contract checks REST traffic against openapi/calls.yaml.
//
// Transport is an http.RoundTripper for tests: every query it sends is parsed and validated with
// gqlparser (fields, arguments, directives, variable declarations and values, and the formats of
// Cloudflare's scalars), and every successful answer is checked against the query's selection: each
// selected field is there, with a value of its declared type and nullability.
package gqlcontract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/cfturn/cfturn/graphql"
)

// TB is the part of testing.TB that Transport reports to.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Transport validates GraphQL requests (POST …/graphql) and their answers, then hands them to
// Base; other requests pass unchecked. It is safe for concurrent use.
type Transport struct {
	TB   TB
	Base http.RoundTripper // nil means http.DefaultTransport

	// RequestsOnly skips answer validation, for tests that make a server answer badly on purpose.
	RequestsOnly bool

	mu   sync.Mutex
	seen map[string]int
}

// Seen reports how many requests of each operation name the transport has validated.
func (t *Transport) Seen() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.seen)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/graphql") || req.Body == nil {
		return base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	op, vars := t.checkRequest(body)
	res, err := base.RoundTrip(req)
	if err != nil || op == nil || t.RequestsOnly || res.StatusCode != http.StatusOK {
		return res, err
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(data))
	t.checkResponse(op, vars, data)
	return res, nil
}

func (t *Transport) checkRequest(body []byte) (*ast.OperationDefinition, map[string]any) {
	t.TB.Helper()
	var req struct {
		Query         string         `json:"query"`
		Variables     map[string]any `json:"variables"`
		OperationName string         `json:"operationName"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		t.TB.Errorf("gqlcontract: request body is not JSON: %v", err)
		return nil, nil
	}
	doc, errs := graphql.Parse(req.Query)
	if errs != nil {
		t.TB.Errorf("gqlcontract: query %s is not valid against analytics.graphql: %v", req.OperationName, errs)
		return nil, nil
	}
	op := doc.Operations.ForName(req.OperationName)
	if op == nil {
		t.TB.Errorf("gqlcontract: operation %q is not in the query", req.OperationName)
		return nil, nil
	}
	schema, _ := graphql.Schema()
	vars, err := validator.VariableValues(schema, op, req.Variables)
	if err != nil {
		t.TB.Errorf("gqlcontract: %s: variables: %v", op.Name, err)
		return nil, nil
	}
	for _, d := range op.VariableDefinitions {
		if v, ok := vars[d.Variable]; ok {
			if msg := scalarProblem(schema, d.Type, v); msg != "" {
				t.TB.Errorf("gqlcontract: %s: $%s: %s", op.Name, d.Variable, msg)
				return nil, nil
			}
		}
	}
	t.mu.Lock()
	if t.seen == nil {
		t.seen = make(map[string]int)
	}
	t.seen[op.Name]++
	t.mu.Unlock()
	return op, vars
}

// scalarProblem checks a value against a type, including the formats of Cloudflare's scalars
// that gqlparser leaves to the server.
func scalarProblem(schema *ast.Schema, typ *ast.Type, v any) string {
	if v == nil {
		if typ.NonNull {
			return "null for a non-null " + typ.String()
		}
		return ""
	}
	if typ.Elem != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("%v is not a list (%s)", v, typ)
		}
		for _, item := range list {
			if msg := scalarProblem(schema, typ.Elem, item); msg != "" {
				return msg
			}
		}
		return ""
	}
	switch typ.NamedType {
	case "Time":
		s, ok := v.(string)
		if _, err := time.Parse(time.RFC3339, s); !ok || err != nil {
			return fmt.Sprintf("%v is not an RFC 3339 Time", v)
		}
	case "Date":
		s, ok := v.(string)
		if _, err := time.Parse(time.DateOnly, s); !ok || err != nil {
			return fmt.Sprintf("%v is not a Date (YYYY-MM-DD)", v)
		}
	case "uint64":
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE-") {
			return fmt.Sprintf("%v is not a uint64", v)
		}
	case "float64":
		if _, ok := v.(json.Number); !ok {
			return fmt.Sprintf("%v is not a float64", v)
		}
	case "string", "String", "ID":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("%v is not a string", v)
		}
	case "Boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("%v is not a Boolean", v)
		}
	default:
		def := schema.Types[typ.NamedType]
		if def != nil && def.Kind == ast.Enum {
			s, _ := v.(string)
			if def.EnumValues.ForName(s) == nil {
				return fmt.Sprintf("%v is not a value of %s", v, typ.NamedType)
			}
		}
	}
	return ""
}

func (t *Transport) checkResponse(op *ast.OperationDefinition, vars map[string]any, data []byte) {
	t.TB.Helper()
	var res struct {
		Data   json.RawMessage   `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.TB.Errorf("gqlcontract: %s: answer is not JSON: %v", op.Name, err)
		return
	}
	if len(res.Errors) > 0 {
		return // an error answer; its shape is the client's to judge
	}
	dec := json.NewDecoder(bytes.NewReader(res.Data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.TB.Errorf("gqlcontract: %s: data: %v", op.Name, err)
		return
	}
	schema, _ := graphql.Schema()
	if msg := checkSelection(schema, vars, schema.Query.Name, op.SelectionSet, v, op.Name); msg != "" {
		t.TB.Errorf("gqlcontract: %s: answer does not match the query: %s", op.Name, msg)
	}
}

func checkSelection(schema *ast.Schema, vars map[string]any, typeName string, set ast.SelectionSet, v any, path string) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprintf("%s: %v is not an object", path, v)
	}
	for _, f := range flatten(set, vars) {
		name := f.Alias
		if name == "" {
			name = f.Name
		}
		val, ok := obj[name]
		if !ok {
			return fmt.Sprintf("%s.%s is missing", path, name)
		}
		if f.Name == "__typename" {
			continue
		}
		def := schema.Types[typeName].Fields.ForName(f.Name)
		if msg := checkValue(schema, vars, def.Type, f.SelectionSet, val, path+"."+name); msg != "" {
			return msg
		}
	}
	return ""
}

func checkValue(schema *ast.Schema, vars map[string]any, typ *ast.Type, set ast.SelectionSet, v any, path string) string {
	if v == nil {
		if typ.NonNull {
			return path + " is null but " + typ.String() + " is non-null"
		}
		return ""
	}
	if typ.Elem != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("%s: %v is not a list", path, v)
		}
		for i, item := range list {
			if msg := checkValue(schema, vars, typ.Elem, set, item, fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
		return ""
	}
	if def := schema.Types[typ.NamedType]; def != nil && def.Kind == ast.Object {
		return checkSelection(schema, vars, typ.NamedType, set, v, path)
	}
	if msg := scalarProblem(schema, typ, v); msg != "" {
		return path + ": " + msg
	}
	return ""
}

// flatten expands fragments and applies @include/@skip.
func flatten(set ast.SelectionSet, vars map[string]any) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if included(s.Directives, vars) {
				out = append(out, s)
			}
		case *ast.InlineFragment:
			if included(s.Directives, vars) {
				out = append(out, flatten(s.SelectionSet, vars)...)
			}
		case *ast.FragmentSpread:
			if included(s.Directives, vars) && s.Definition != nil {
				out = append(out, flatten(s.Definition.SelectionSet, vars)...)
			}
		}
	}
	return out
}

func included(dirs ast.DirectiveList, vars map[string]any) bool {
	for _, d := range dirs {
		if d.Name != "include" && d.Name != "skip" {
			continue
		}
		v, _ := d.Arguments.ForName("if").Value.Value(vars)
		b, _ := v.(bool)
		if d.Name == "include" && !b || d.Name == "skip" && b {
			return false
		}
	}
	return true
}
