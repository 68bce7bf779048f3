package browser_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/examples/browser"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(browser.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/example/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		h.Get("Content-Security-Policy") == "" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("GET: %d %v", resp.StatusCode, h)
	}
	for _, want := range []string{`iceTransportPolicy: "relay"`, "window.cfturnResult", "getStats",
		"run serve-ice without --identity-header to try it", `import {keepFresh} from "../cfturn.js"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	resp, err = http.Post(srv.URL+"/example/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", resp.StatusCode, resp.Header)
	}
}
