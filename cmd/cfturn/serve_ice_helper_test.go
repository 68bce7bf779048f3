package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/pkg/turn/turnjs"
)

// serve-ice serves the browser helper at /cfturn.js, cacheable and revalidated by its ETag.
func TestServeICEServesHelper(t *testing.T) {
	e := startServeICE(t, "--example-page")
	resp, err := http.Get(e.url + "cfturn.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") ||
		resp.Header.Get("ETag") != turnjs.ETag() || !strings.Contains(string(body), "export function keepFresh") {
		t.Fatalf("/cfturn.js: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"cfturn.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("/cfturn.js with its ETag: %d, want 304", resp.StatusCode)
	}
	// The example page imports it from there.
	_, page := e.get(t, "/example/", "")
	if !strings.Contains(page, `from "../cfturn.js"`) {
		t.Error("the example page does not import ../cfturn.js")
	}
	if n := e.srv.Requests()["generateIceServers"]; n != 1 {
		t.Errorf("%d mints, want only the start-up check: serving the script must mint nothing", n)
	}
}
