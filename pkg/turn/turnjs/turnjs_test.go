package turnjs_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turnjs"
)

func get(t *testing.T, url, method string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHandlerServesTheScript(t *testing.T) {
	srv := httptest.NewServer(turnjs.Handler())
	defer srv.Close()
	resp, body := get(t, srv.URL+"/cfturn.js", http.MethodGet, nil)
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		h.Get("Cache-Control") != "public, max-age=86400" || h.Get("ETag") != turnjs.ETag() ||
		h.Get("Access-Control-Allow-Origin") != "*" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET: %d %v", resp.StatusCode, h)
	}
	if !bytes.Equal(body, turnjs.Script()) {
		t.Fatal("GET's body is not the script")
	}
	for _, want := range []string{"export function keepFresh", "export async function fetchIceServers", "restartIce()", "setConfiguration", "Retry-After"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the script lacks %q", want)
		}
	}
	if e := turnjs.ETag(); len(e) < 10 || e[0] != '"' || e[len(e)-1] != '"' {
		t.Errorf("ETag %q is not a quoted tag", e)
	}

	resp, body = get(t, srv.URL+"/cfturn.js", http.MethodHead, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(turnjs.Script())) {
		t.Errorf("HEAD: %d, %d bytes of body, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	resp, _ = get(t, srv.URL+"/cfturn.js", http.MethodPost, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestHandlerRevalidates(t *testing.T) {
	srv := httptest.NewServer(turnjs.Handler())
	defer srv.Close()
	tag := turnjs.ETag()
	for _, tc := range []struct {
		ifNoneMatch string
		want        int
	}{
		{tag, http.StatusNotModified},
		{"W/" + tag, http.StatusNotModified},
		{`"other", ` + tag, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"other"`, http.StatusOK},
		{strings.Trim(tag, `"`), http.StatusOK}, // unquoted is not the same tag
	} {
		resp, body := get(t, srv.URL+"/", http.MethodGet, http.Header{"If-None-Match": {tc.ifNoneMatch}})
		if resp.StatusCode != tc.want {
			t.Errorf("If-None-Match %s: %d, want %d", tc.ifNoneMatch, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusNotModified && (len(body) != 0 || resp.Header.Get("ETag") != tag || resp.Header.Get("Cache-Control") == "") {
			t.Errorf("If-None-Match %s: 304 with %d bytes, headers %v", tc.ifNoneMatch, len(body), resp.Header)
		}
	}
}

func TestScriptIsACopy(t *testing.T) {
	s := turnjs.Script()
	s[0] ^= 0xff
	if bytes.Equal(s, turnjs.Script()) {
		t.Fatal("Script hands out the embedded bytes themselves")
	}
}
