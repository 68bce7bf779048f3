package turntest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/cfturn/cfturn/graphql"
)

// gqlError is one entry of a GraphQL answer's "errors", shaped like Cloudflare's: a message, the
// path of the field it applies to, and extensions with a timestamp (and a code where Cloudflare
// sends one).
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Locations  []gqlLocation  `json:"locations,omitempty"`
	Extensions map[string]any `json:"extensions"`
}

type gqlLocation struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// queryError is a failure found while executing: its HTTP status and the error to answer.
type queryError struct {
	status int
	err    gqlError
	data   any // the partial data to answer with it, or nil
}

func (e *queryError) Error() string { return e.err.Message }

// serveGraphQL answers POST /client/v4/graphql: the query is parsed and validated against
// graphql/analytics.graphql, then executed on the usage the relay counted.
func (f *Fake) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	now := f.now()
	answer := func(status int, data any, errs ...gqlError) {
		for i := range errs {
			if errs[i].Extensions == nil {
				errs[i].Extensions = map[string]any{}
			}
			errs[i].Extensions["timestamp"] = now.UTC().Format(time.RFC3339Nano)
		}
		body := map[string]any{"data": data, "errors": nil}
		if len(errs) > 0 {
			body["errors"] = errs
			noteFailure(w, errs[0].Message)
		}
		f.ok(w, status, body)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(http.StatusMethodNotAllowed, nil, gqlError{Message: "method not allowed: send the query with POST"})
		return
	}
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !hasTok || tok == "":
		answer(http.StatusUnauthorized, nil, gqlError{Message: "missing authentication: send Authorization: Bearer <API token>", Extensions: map[string]any{"code": "authn"}})
		return
	case tok != f.token:
		answer(http.StatusForbidden, nil, gqlError{Message: "authentication error: the API token is not valid", Extensions: map[string]any{"code": "authn"}})
		return
	}
	if !f.analytics.usage.allow(now) {
		w.Header().Set("Retry-After", strconv.FormatInt(300-now.Unix()%300, 10))
		answer(http.StatusTooManyRequests, nil, gqlError{Message: "rate limiter budget depleted, try again after 5 minutes", Extensions: map[string]any{"code": "rate_limiting"}})
		return
	}
	var req struct {
		Query         string         `json:"query"`
		Variables     map[string]any `json:"variables"`
		OperationName string         `json:"operationName"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		err = dec.Decode(&req)
	}
	if err != nil || strings.TrimSpace(req.Query) == "" {
		answer(http.StatusBadRequest, nil, gqlError{Message: "failed to parse request body: expected JSON {\"query\": string, \"variables\"?: object, \"operationName\"?: string} of at most 64 KiB"})
		return
	}
	// Parsing and validating deeply nested input costs time quadratic in its depth: refuse it
	// before the parser sees it. Cloudflare's own queries nest a handful of levels.
	if d := nesting(body); d > maxQueryNesting {
		answer(http.StatusOK, nil, gqlError{Message: fmt.Sprintf("the request nests %d levels deep, over the %d allowed", d, maxQueryNesting)})
		return
	}
	doc, errs := graphql.Parse(req.Query)
	if errs != nil {
		answer(http.StatusOK, nil, fromGQLErrors(errs)...)
		return
	}
	op := doc.Operations.ForName(req.OperationName)
	if op == nil {
		answer(http.StatusOK, nil, gqlError{Message: fmt.Sprintf("operation %q not found in the document", req.OperationName)})
		return
	}
	if op.Operation != ast.Query {
		answer(http.StatusOK, nil, gqlError{Message: "only queries are supported"})
		return
	}
	schema, _ := graphql.Schema()
	vars, err := validator.VariableValues(schema, op, req.Variables)
	if err != nil {
		var ge *gqlerror.Error
		if errors.As(err, &ge) {
			answer(http.StatusOK, nil, fromGQLErrors(gqlerror.List{ge})...)
		} else {
			answer(http.StatusOK, nil, gqlError{Message: err.Error()})
		}
		return
	}
	// Fragments can multiply a small query into millions of fields: count them, spreads
	// expanded, before running anything.
	if n := countFields(op.SelectionSet, maxQueryFields+1); n > maxQueryFields {
		answer(http.StatusOK, nil, gqlError{Message: fmt.Sprintf("the query selects more than %d fields with its fragments expanded", maxQueryFields)})
		return
	}
	x := &executor{f: f, vars: vars, now: now}
	data, err := x.root(op.SelectionSet)
	var qe *queryError
	switch {
	case errors.As(err, &qe):
		answer(qe.status, qe.data, qe.err)
	case err != nil:
		answer(http.StatusOK, nil, gqlError{Message: err.Error()})
	default:
		answer(http.StatusOK, data)
	}
}

func fromGQLErrors(list gqlerror.List) []gqlError {
	var out []gqlError
	for _, e := range list {
		g := gqlError{Message: e.Message}
		for _, l := range e.Locations {
			g.Locations = append(g.Locations, gqlLocation{Line: l.Line, Column: l.Column})
		}
		for _, p := range e.Path {
			g.Path = append(g.Path, fmt.Sprint(p))
		}
		out = append(out, g)
	}
	return out
}

// jsonObject is a JSON object that keeps the order of the query's selections.
type jsonObject []jsonField

type jsonField struct {
	name  string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// executor runs one validated query.
// Bounds of one GraphQL request to the fake.
const (
	maxQueryNesting = 32  // brackets and braces, in the query text and the variables alike
	maxQueryFields  = 500 // fields selected, fragments expanded
)

// nesting returns how deeply brackets, braces and parentheses nest in b.
func nesting(b []byte) int {
	depth, most := 0, 0
	for _, c := range b {
		switch c {
		case '{', '[', '(':
			if depth++; depth > most {
				most = depth
			}
		case '}', ']', ')':
			depth--
		}
	}
	return most
}

// countFields counts the fields set selects, fragment spreads and inline fragments expanded and
// @include/@skip ignored (an upper bound), stopping once it reaches limit.
func countFields(set ast.SelectionSet, limit int) int {
	n := 0
	for _, sel := range set {
		if n >= limit {
			return n
		}
		switch s := sel.(type) {
		case *ast.Field:
			n += 1 + countFields(s.SelectionSet, limit-n-1)
		case *ast.InlineFragment:
			n += countFields(s.SelectionSet, limit-n)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				n += countFields(s.Definition.SelectionSet, limit-n)
			}
		}
	}
	return n
}

type executor struct {
	f    *Fake
	vars map[string]any
	now  time.Time
}

// fields flattens a selection set: fragments are expanded and @include/@skip applied.
func (x *executor) fields(set ast.SelectionSet) ([]*ast.Field, error) {
	var out []*ast.Field
	for _, sel := range set {
		var dirs ast.DirectiveList
		var sub ast.SelectionSet
		switch s := sel.(type) {
		case *ast.Field:
			ok, err := x.included(s.Directives)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
			continue
		case *ast.InlineFragment:
			dirs, sub = s.Directives, s.SelectionSet
		case *ast.FragmentSpread:
			if s.Definition == nil {
				return nil, fmt.Errorf("unknown fragment %q", s.Name)
			}
			dirs, sub = s.Directives, s.Definition.SelectionSet
		}
		ok, err := x.included(dirs)
		if err != nil {
			return nil, err
		}
		if ok {
			more, err := x.fields(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

func (x *executor) included(dirs ast.DirectiveList) (bool, error) {
	for _, d := range dirs {
		if d.Name != "include" && d.Name != "skip" {
			continue
		}
		v, err := d.Arguments.ForName("if").Value.Value(x.vars)
		if err != nil {
			return false, err
		}
		b, _ := v.(bool)
		if d.Name == "include" && !b || d.Name == "skip" && b {
			return false, nil
		}
	}
	return true, nil
}

func fieldKey(f *ast.Field) string {
	if f.Alias != "" {
		return f.Alias
	}
	return f.Name
}

func (x *executor) root(set ast.SelectionSet) (any, error) {
	fs, err := x.fields(set)
	if err != nil {
		return nil, err
	}
	var out jsonObject
	for _, fd := range fs {
		switch fd.Name {
		case "__typename":
			out = append(out, jsonField{fieldKey(fd), "Query"})
		case "viewer":
			v, err := x.viewer(fd)
			if err != nil {
				var qe *queryError
				if errors.As(err, &qe) && qe.status == http.StatusOK {
					qe.data = jsonObject{{fieldKey(fd), nil}}
				}
				return nil, err
			}
			out = append(out, jsonField{fieldKey(fd), v})
		}
	}
	return out, nil
}

func (x *executor) viewer(fd *ast.Field) (any, error) {
	fs, err := x.fields(fd.SelectionSet)
	if err != nil {
		return nil, err
	}
	var out jsonObject
	for _, f := range fs {
		switch f.Name {
		case "__typename":
			out = append(out, jsonField{fieldKey(f), "viewer"})
		case "accounts":
			filter, err := x.object(f, "filter")
			if err != nil {
				return nil, err
			}
			tag, _ := filter["accountTag"].(string)
			path := []any{fieldKey(fd), fieldKey(f), "0"}
			if len(tag) == 0 || len(tag) > 32 || !alnum(tag) {
				return nil, &queryError{status: http.StatusOK, err: gqlError{Message: "not authorized for that account", Path: path[:2], Extensions: map[string]any{"code": "authz"}}}
			}
			acct, err := x.account(f, tag, path)
			if err != nil {
				return nil, err
			}
			out = append(out, jsonField{fieldKey(f), []any{acct}})
		}
	}
	return out, nil
}

// object evaluates an input-object argument.
func (x *executor) object(f *ast.Field, name string) (map[string]any, error) {
	a := f.Arguments.ForName(name)
	if a == nil {
		return nil, nil
	}
	v, err := a.Value.Value(x.vars)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func (x *executor) account(fd *ast.Field, tag string, path []any) (any, error) {
	fs, err := x.fields(fd.SelectionSet)
	if err != nil {
		return nil, err
	}
	lim := x.f.analytics.limits
	var out jsonObject
	for _, f := range fs {
		switch f.Name {
		case "__typename":
			out = append(out, jsonField{fieldKey(f), "account"})
		case "settings":
			node, err := x.settings(f, lim)
			if err != nil {
				return nil, err
			}
			out = append(out, jsonField{fieldKey(f), node})
		case "callsTurnUsageAdaptiveGroups":
			rows, err := x.groups(f, tag, append(path, fieldKey(f)))
			if err != nil {
				return nil, err
			}
			out = append(out, jsonField{fieldKey(f), rows})
		}
	}
	return out, nil
}

func (x *executor) settings(fd *ast.Field, lim analyticsLimits) (any, error) {
	fs, err := x.fields(fd.SelectionSet)
	if err != nil {
		return nil, err
	}
	var out jsonObject
	for _, f := range fs {
		switch f.Name {
		case "__typename":
			out = append(out, jsonField{fieldKey(f), "AccountSettings"})
		case "callsTurnUsageAdaptiveGroups":
			nfs, err := x.fields(f.SelectionSet)
			if err != nil {
				return nil, err
			}
			var node jsonObject
			for _, n := range nfs {
				var v any
				switch n.Name {
				case "__typename":
					v = "AccountSettingsNode"
				case "enabled":
					v = true
				case "maxDuration":
					v = int64(lim.maxDuration / time.Second)
				case "maxNumberOfFields":
					v = 30
				case "maxPageSize":
					v = lim.maxPageSize
				case "notOlderThan":
					v = int64(lim.notOlderThan / time.Second)
				}
				node = append(node, jsonField{fieldKey(n), v})
			}
			out = append(out, jsonField{fieldKey(f), node})
		}
	}
	return out, nil
}

// The dimensions of the dataset, and the metrics of its sum and avg.
var (
	usageDimensions = []string{"datetime", "datetimeMinute", "datetimeFiveMinutes", "datetimeFifteenMinutes", "datetimeHour", "date",
		"keyId", "customIdentifier", "username", "datacenterCity", "datacenterCountry", "datacenterRegion"}
	timeDimensions = map[string]time.Duration{"datetime": time.Minute, "datetimeMinute": time.Minute, "datetimeFiveMinutes": 5 * time.Minute,
		"datetimeFifteenMinutes": 15 * time.Minute, "datetimeHour": time.Hour}
)

// dimension returns the value of dimension name for a counter at minute (Unix minute).
func dimension(name string, minute int64, s usageSeries) string {
	t := time.Unix(minute*60, 0).UTC()
	if d, ok := timeDimensions[name]; ok {
		return t.Truncate(d).Format(time.RFC3339)
	}
	switch name {
	case "date":
		return t.Format(time.DateOnly)
	case "keyId":
		return s.keyID
	case "customIdentifier":
		return s.customIdentifier
	case "username":
		return s.username
	case "datacenterCity":
		return FakeDatacenterCity
	case "datacenterCountry":
		return FakeDatacenterCountry
	case "datacenterRegion":
		return FakeDatacenterRegion
	}
	return ""
}

type usageGroup struct {
	dims    map[string]string
	egress  uint64
	ingress uint64
	count   uint64
	conns   map[[2]string]struct{} // (five-minute bucket, username) pairs seen
	buckets map[string]struct{}
}

// groups executes callsTurnUsageAdaptiveGroups: filter, group, order, limit.
func (x *executor) groups(fd *ast.Field, account string, path []any) (any, error) {
	lim := x.f.analytics.limits
	limitErr := func(format string, args ...any) error {
		return &queryError{status: http.StatusBadRequest, err: gqlError{Message: fmt.Sprintf(format, args...), Path: path}}
	}
	limitArg, err := fd.Arguments.ForName("limit").Value.Value(x.vars)
	if err != nil {
		return nil, err
	}
	limit, ok := toUint(limitArg)
	if !ok || limit == 0 || limit > uint64(lim.maxPageSize) {
		return nil, limitErr("limit must be positive number and not greater than %d", lim.maxPageSize)
	}
	filter, err := x.object(fd, "filter")
	if err != nil {
		return nil, err
	}
	pred, lo, hi, err := compileFilter(filter)
	if err != nil {
		return nil, &queryError{status: http.StatusBadRequest, err: gqlError{Message: "error parsing args: " + err.Error(), Path: path}}
	}
	if lo.IsZero() {
		lo = x.now.Add(-lim.notOlderThan)
	}
	if hi.IsZero() {
		hi = x.now
	}
	if hi.Sub(lo) > lim.maxDuration {
		return nil, limitErr("query time range is too large: %ds, the maximum is %ds; narrow the datetime filter", int64(hi.Sub(lo)/time.Second), int64(lim.maxDuration/time.Second))
	}
	if lo.Before(x.now.Add(-lim.notOlderThan - time.Minute)) {
		return nil, limitErr("cannot request data older than %ds", int64(lim.notOlderThan/time.Second))
	}

	// Which dimensions are grouped by: every one selected in any dimensions field.
	gfs, err := x.fields(fd.SelectionSet)
	if err != nil {
		return nil, err
	}
	var dims []string
	for _, g := range gfs {
		if g.Name != "dimensions" {
			continue
		}
		dfs, err := x.fields(g.SelectionSet)
		if err != nil {
			return nil, err
		}
		for _, d := range dfs {
			if d.Name != "__typename" && !slices.Contains(dims, d.Name) {
				dims = append(dims, d.Name)
			}
		}
	}
	slices.SortFunc(dims, func(a, b string) int { return slices.Index(usageDimensions, a) - slices.Index(usageDimensions, b) })

	var order []string
	if a := fd.Arguments.ForName("orderBy"); a != nil {
		v, err := a.Value.Value(x.vars)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case []any:
			for _, o := range v {
				if s, ok := o.(string); ok {
					order = append(order, s)
				}
			}
		case string:
			order = append(order, v)
		}
	}
	for _, o := range order {
		field := strings.TrimSuffix(strings.TrimSuffix(o, "_ASC"), "_DESC")
		if slices.Contains(usageDimensions, field) && !slices.Contains(dims, field) {
			return nil, &queryError{status: http.StatusBadRequest, err: gqlError{Message: fmt.Sprintf("orderBy %s: %s is not one of the selected dimensions", o, field), Path: path}}
		}
	}

	groups := make(map[string]*usageGroup)
	var keyBuf strings.Builder
	x.f.analytics.usage.each(lo.Unix()/60, hi.Unix()/60+1, func(minute int64, s usageSeries, c usageCount) {
		if s.account != account || !pred(minute, s) {
			return
		}
		keyBuf.Reset()
		for _, d := range dims {
			keyBuf.WriteString(dimension(d, minute, s))
			keyBuf.WriteByte(0)
		}
		g := groups[keyBuf.String()]
		if g == nil {
			g = &usageGroup{dims: make(map[string]string, len(dims)), conns: map[[2]string]struct{}{}, buckets: map[string]struct{}{}}
			for _, d := range dims {
				g.dims[d] = dimension(d, minute, s)
			}
			groups[keyBuf.String()] = g
		}
		g.egress += c.egress
		g.ingress += c.ingress
		g.count++
		b := dimension("datetimeFiveMinutes", minute, s)
		g.conns[[2]string{b, s.username}] = struct{}{}
		g.buckets[b] = struct{}{}
	})
	list := make([]*usageGroup, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *usageGroup) int {
		for _, o := range order {
			desc := strings.HasSuffix(o, "_DESC")
			field := strings.TrimSuffix(strings.TrimSuffix(o, "_ASC"), "_DESC")
			var c int
			switch field {
			case "sum_egressBytes":
				c = cmp.Compare(a.egress, b.egress)
			case "sum_ingressBytes":
				c = cmp.Compare(a.ingress, b.ingress)
			case "count":
				c = cmp.Compare(a.count, b.count)
			default:
				c = strings.Compare(a.dims[field], b.dims[field])
			}
			if desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		for _, d := range dims {
			if c := strings.Compare(a.dims[d], b.dims[d]); c != 0 {
				return c
			}
		}
		return 0
	})
	if uint64(len(list)) > limit {
		list = list[:limit]
	}

	rows := make([]any, 0, len(list))
	for _, g := range list {
		var row jsonObject
		for _, gf := range gfs {
			sub, err := x.fields(gf.SelectionSet)
			if err != nil {
				return nil, err
			}
			var v any
			switch gf.Name {
			case "__typename":
				v = "AccountCallsTurnUsageAdaptiveGroups"
			case "count":
				v = g.count
			case "dimensions":
				var o jsonObject
				for _, d := range sub {
					if d.Name == "__typename" {
						o = append(o, jsonField{fieldKey(d), "AccountCallsTurnUsageAdaptiveGroupsDimensions"})
					} else {
						o = append(o, jsonField{fieldKey(d), g.dims[d.Name]})
					}
				}
				v = o
			case "sum":
				var o jsonObject
				for _, m := range sub {
					switch m.Name {
					case "egressBytes":
						o = append(o, jsonField{fieldKey(m), g.egress})
					case "ingressBytes":
						o = append(o, jsonField{fieldKey(m), g.ingress})
					case "__typename":
						o = append(o, jsonField{fieldKey(m), "AccountCallsTurnUsageAdaptiveGroupsSum"})
					}
				}
				v = o
			case "avg":
				var o jsonObject
				for _, m := range sub {
					switch m.Name {
					case "concurrentConnectionsFiveMinutes":
						o = append(o, jsonField{fieldKey(m), float64(len(g.conns)) / float64(max(len(g.buckets), 1))})
					case "__typename":
						o = append(o, jsonField{fieldKey(m), "AccountCallsTurnUsageAdaptiveGroupsAvg"})
					}
				}
				v = o
			}
			row = append(row, jsonField{fieldKey(gf), v})
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func toUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case json.Number:
		u, err := strconv.ParseUint(n.String(), 10, 64)
		return u, err == nil
	case int64:
		return uint64(n), n >= 0
	case float64:
		return uint64(n), n >= 0 && n <= math.MaxInt64 && n == math.Trunc(n)
	case string:
		u, err := strconv.ParseUint(n, 10, 64)
		return u, err == nil
	}
	return 0, false
}

// usagePredicate tests one counter (its Unix minute and series) against a filter.
type usagePredicate func(minute int64, s usageSeries) bool

// compileFilter turns a filter input object into a predicate, and returns the time bounds it
// sets at its top level (and in AND), [lo, hi), zero when it sets none.
func compileFilter(filter map[string]any) (usagePredicate, time.Time, time.Time, error) {
	var preds []usagePredicate
	var lo, hi time.Time
	tighten := func(l, h time.Time) {
		if !l.IsZero() && (lo.IsZero() || l.After(lo)) {
			lo = l
		}
		if !h.IsZero() && (hi.IsZero() || h.Before(hi)) {
			hi = h
		}
	}
	names := make([]string, 0, len(filter))
	for k := range filter {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		v := filter[name]
		if v == nil {
			continue // an absent variable: no condition
		}
		switch name {
		case "AND", "OR":
			list, ok := v.([]any)
			if !ok {
				return nil, lo, hi, fmt.Errorf("%s: expected a list of filters", name)
			}
			var subs []usagePredicate
			for _, item := range list {
				m, ok := item.(map[string]any)
				if !ok {
					return nil, lo, hi, fmt.Errorf("%s: expected a list of filters", name)
				}
				p, l, h, err := compileFilter(m)
				if err != nil {
					return nil, lo, hi, err
				}
				if name == "AND" {
					tighten(l, h)
				}
				subs = append(subs, p)
			}
			if name == "AND" {
				preds = append(preds, func(m int64, s usageSeries) bool {
					for _, p := range subs {
						if !p(m, s) {
							return false
						}
					}
					return true
				})
			} else if len(subs) > 0 {
				preds = append(preds, func(m int64, s usageSeries) bool {
					for _, p := range subs {
						if p(m, s) {
							return true
						}
					}
					return false
				})
			}
			continue
		}
		field, op, _ := strings.Cut(name, "_")
		if _, ok := timeDimensions[field]; ok || field == "date" {
			p, l, h, err := timeCondition(field, op, v)
			if err != nil {
				return nil, lo, hi, fmt.Errorf("%s: %w", name, err)
			}
			tighten(l, h)
			preds = append(preds, p)
			continue
		}
		p, err := stringCondition(field, op, v)
		if err != nil {
			return nil, lo, hi, fmt.Errorf("%s: %w", name, err)
		}
		preds = append(preds, p)
	}
	return func(m int64, s usageSeries) bool {
		for _, p := range preds {
			if !p(m, s) {
				return false
			}
		}
		return true
	}, lo, hi, nil
}

// timeCondition compiles a datetime*/date condition. The data has minute resolution: a minute
// counts when its start meets the condition (after truncating to the field's bucket).
func timeCondition(field, op string, v any) (usagePredicate, time.Time, time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("expected a string, got %v", v)
	}
	var t time.Time
	var err error
	bucket := timeDimensions[field]
	if field == "date" {
		t, err = time.Parse(time.DateOnly, s)
		bucket = 24 * time.Hour
		if err != nil {
			return nil, t, t, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
		}
	} else if t, err = time.Parse(time.RFC3339, s); err != nil {
		return nil, t, t, fmt.Errorf("%q is not an RFC 3339 time (e.g. 2026-12-01T09:30:00Z)", s)
	}
	t = t.UTC()
	at := func(m int64) time.Time { return time.Unix(m*60, 0).UTC().Truncate(bucket) }
	var lo, hi time.Time
	var p usagePredicate
	switch op {
	case "":
		p, lo, hi = func(m int64, _ usageSeries) bool { return at(m).Equal(t) }, t, t.Add(bucket)
	case "geq":
		p, lo = func(m int64, _ usageSeries) bool { return !at(m).Before(t) }, t
	case "gt":
		p, lo = func(m int64, _ usageSeries) bool { return at(m).After(t) }, t
	case "leq":
		p, hi = func(m int64, _ usageSeries) bool { return !at(m).After(t) }, t.Add(bucket)
	case "lt":
		p, hi = func(m int64, _ usageSeries) bool { return at(m).Before(t) }, t
	default:
		return nil, lo, hi, fmt.Errorf("unknown operator %q", op)
	}
	return p, lo, hi, nil
}

func stringCondition(field, op string, v any) (usagePredicate, error) {
	get := map[string]func(usageSeries) string{
		"keyId":             func(s usageSeries) string { return s.keyID },
		"customIdentifier":  func(s usageSeries) string { return s.customIdentifier },
		"username":          func(s usageSeries) string { return s.username },
		"datacenterCity":    func(usageSeries) string { return FakeDatacenterCity },
		"datacenterCountry": func(usageSeries) string { return FakeDatacenterCountry },
		"datacenterRegion":  func(usageSeries) string { return FakeDatacenterRegion },
	}[field]
	if get == nil {
		return nil, fmt.Errorf("unknown filter field %q", field)
	}
	switch op {
	case "", "neq":
		want, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string, got %v", v)
		}
		neq := op == "neq"
		return func(_ int64, s usageSeries) bool { return (get(s) == want) != neq }, nil
	case "in":
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("expected a list of strings, got %v", v)
		}
		set := make(map[string]bool, len(list))
		for _, item := range list {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("expected a list of strings, got %v", item)
			}
			set[s] = true
		}
		return func(_ int64, s usageSeries) bool { return set[get(s)] }, nil
	}
	return nil, fmt.Errorf("unknown operator %q", op)
}
