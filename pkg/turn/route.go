package turn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cfturn/cfturn/gen/calls"
)

// Placeholder identifiers: valid account and key IDs (letters and digits, so the generated
// builders' path escaping leaves them as they are) that no real ID equals.
const (
	placeholderAccount = "cfturnPLACEHOLDERaccount00000000"
	placeholderKey     = "cfturnPLACEHOLDERkey000000000000"
)

// route is an operation's URL as the generated request builder renders it, split around the
// placeholder identifiers. Rendering once per client keeps gen/ the source of truth for every
// path while a call only joins IDs that validation has limited to letters and digits, which the
// builder would not have escaped either.
type route []string

// newRoute renders build's URL with the placeholders and splits it around them.
func newRoute(build func() (*http.Request, error)) (route, error) {
	req, err := build()
	if err != nil {
		return nil, err
	}
	u := req.URL.String()
	var parts route
	for {
		i, n := strings.Index(u, placeholderAccount), len(placeholderAccount)
		if j := strings.Index(u, placeholderKey); j >= 0 && (i < 0 || j < i) {
			i, n = j, len(placeholderKey)
		}
		if i < 0 {
			return append(parts, u), nil
		}
		parts, u = append(parts, u[:i]), u[i+n:]
	}
}

// url joins the route's parts with ids, in the order the path takes them.
func (r route) url(ids ...string) string {
	var b strings.Builder
	for i, p := range r {
		b.WriteString(p)
		if i < len(ids) {
			b.WriteString(ids[i])
		}
	}
	return b.String()
}

// routes are the client's rendered operation URLs.
type routes struct {
	keys, key, ice route
}

func newRoutes(apiBase, iceBase string) (routes, error) {
	var r routes
	var err error
	if r.keys, err = newRoute(func() (*http.Request, error) { return calls.NewListTurnKeysRequest(apiBase, placeholderAccount) }); err != nil {
		return r, err
	}
	if r.key, err = newRoute(func() (*http.Request, error) {
		return calls.NewGetTurnKeyRequest(apiBase, placeholderAccount, placeholderKey)
	}); err != nil {
		return r, err
	}
	r.ice, err = newRoute(func() (*http.Request, error) {
		return calls.NewGenerateIceServersRequestWithBody(iceBase, placeholderKey, "", nil)
	})
	return r, err
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
