// Package contract checks HTTP traffic against openapi/calls.yaml.
//
// Transport is an http.RoundTripper for tests: it validates every request it sends and every response
// it reads with kin-openapi's openapi3filter and reports each mismatch to the test, so a test that
// passes has also shown that the client and the server it talked to both kept to the spec.
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/cfturn/cfturn/openapi"
)

// TB is the part of testing.TB that Transport reports to.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Transport validates traffic against the spec, then hands it to Base.
// It is safe for concurrent use.
type Transport struct {
	TB   TB
	Base http.RoundTripper // nil means http.DefaultTransport

	// RequestsOnly skips response validation, for tests that make a server answer outside the
	// spec on purpose (an HTML error page, a truncated body).
	RequestsOnly bool

	mu   sync.Mutex
	seen map[string]int
}

// Seen reports how many requests of each operationId the transport has validated.
func (t *Transport) Seen() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.seen)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.TB.Helper()
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	sp, err := load()
	if err != nil {
		t.TB.Errorf("contract: %v", err)
		return base.RoundTrip(req)
	}

	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Body = bodyOf(body)

	route, params := sp.find(req.Method, req.URL.Path)
	if route == nil {
		t.TB.Errorf("contract: %s %s matches no operation in openapi/calls.yaml", req.Method, req.URL.Path)
		return base.RoundTrip(out)
	}
	t.mu.Lock()
	if t.seen == nil {
		t.seen = make(map[string]int)
	}
	t.seen[route.Operation.OperationID]++
	t.mu.Unlock()

	check := req.Clone(context.WithoutCancel(req.Context()))
	check.Body = bodyOf(body)
	in := &openapi3filter.RequestValidationInput{
		Request:    check,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: bearerOnly, MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(check.Context(), in); err != nil {
		t.TB.Errorf("contract: request %s does not match the spec: %v", route.Operation.OperationID, err)
	}

	resp, err := base.RoundTrip(out)
	if err != nil || t.RequestsOnly {
		return resp, err
	}
	respBody, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = bodyOf(respBody)
	if readErr != nil {
		// A dropped connection mid-body is the server's fault under test, not a contract matter:
		// hand the client the same failure.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{readErr}))
		return resp, nil
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   bodyOf(respBody),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(check.Context(), rin); err != nil {
		t.TB.Errorf("contract: response %d to %s does not match the spec: %v\nbody: %.300s",
			resp.StatusCode, route.Operation.OperationID, err, respBody)
	}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

func bodyOf(b []byte) io.ReadCloser {
	if b == nil {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(b))
}

// bearerOnly accepts a request that carries a non-empty bearer token; which token is right is the
// server's business, not the contract's.
func bearerOnly(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return fmt.Errorf("security %q: no bearer token in the Authorization header", in.SecuritySchemeName)
	}
	return nil
}

// spec is the loaded document with one matcher per operation path.
type spec struct {
	doc   *openapi3.T
	paths []pathMatcher
}

type pathMatcher struct {
	re    *regexp.Regexp
	names []string
	path  string
	item  *openapi3.PathItem
	srv   *openapi3.Server
}

var load = sync.OnceValues(func() (*spec, error) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		return nil, err
	}
	sp := &spec{doc: doc}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths.Map() {
		srv := doc.Servers[0]
		if len(item.Servers) > 0 {
			srv = item.Servers[0]
		}
		u, err := url.Parse(srv.URL)
		if err != nil {
			return nil, fmt.Errorf("server %q: %w", srv.URL, err)
		}
		// Any prefix before the server's own base path is allowed, so tests can mount the API
		// under a path of their own and catch clients that build absolute paths.
		m := pathMatcher{path: path, item: item, srv: srv}
		pattern := "^.*" + regexp.QuoteMeta(strings.TrimSuffix(u.Path, "/"))
		last := 0
		for _, loc := range param.FindAllStringSubmatchIndex(path, -1) {
			pattern += regexp.QuoteMeta(path[last:loc[0]]) + "([^/]+)"
			m.names = append(m.names, path[loc[2]:loc[3]])
			last = loc[1]
		}
		m.re = regexp.MustCompile(pattern + regexp.QuoteMeta(path[last:]) + "$")
		sp.paths = append(sp.paths, m)
	}
	return sp, nil
})

func (sp *spec) find(method, path string) (*routers.Route, map[string]string) {
	for _, m := range sp.paths {
		sub := m.re.FindStringSubmatch(path)
		if sub == nil {
			continue
		}
		op := m.item.GetOperation(method)
		if op == nil {
			return nil, nil
		}
		params := make(map[string]string, len(m.names))
		for i, name := range m.names {
			params[name] = sub[i+1]
		}
		return &routers.Route{Spec: sp.doc, Server: m.srv, Path: m.path, PathItem: m.item, Method: method, Operation: op}, params
	}
	return nil, nil
}
