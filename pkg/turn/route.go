package turn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// route is an operation's URL: its base URL joined with its path template, split around the
// template's {parameters}. Rendering once per client leaves a call only the joining of IDs.
// Tests check every route against the request builders generated from the spec (gen/callshttp),
// which pkg/turn does not link: they need the oapi-codegen runtime and its dependencies.
type route []string

// newRoute renders base (ending in "/") and path (starting with "/", as in the spec).
func newRoute(base, path string) route {
	u := base + strings.TrimPrefix(path, "/")
	var parts route
	for {
		i := strings.IndexByte(u, '{')
		j := strings.IndexByte(u, '}')
		if i < 0 || j < i {
			return append(parts, u)
		}
		parts, u = append(parts, u[:i]), u[j+1:]
	}
}

// url joins the route's parts with ids, in the order the path takes them, escaped as path
// segments. Validated key and account IDs are letters and digits, which escaping leaves as they
// are without allocating.
func (r route) url(ids ...string) string {
	var b strings.Builder
	for i, p := range r {
		b.WriteString(p)
		if i < len(ids) {
			b.WriteString(url.PathEscape(ids[i]))
		}
	}
	return b.String()
}

// routes are the client's rendered operation URLs.
type routes struct {
	keys, key, ice, revoke route
}

func newRoutes(apiBase, iceBase string) routes {
	return routes{
		keys:   newRoute(apiBase, keysPath),
		key:    newRoute(apiBase, keyPath),
		ice:    newRoute(iceBase, opGenerateICE.path),
		revoke: newRoute(iceBase, opRevokeICE.path),
	}
}

var contentJSON = []string{"application/json"}

// newRequest builds a request to url with body, a generated model, encoded as JSON.
func newRequest(method, url string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header["Content-Type"] = contentJSON
	}
	return req, nil
}
