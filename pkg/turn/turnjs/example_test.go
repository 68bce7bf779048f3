package turnjs_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/cfturn/cfturn/pkg/turn/turnjs"
)

// Serve the helper beside your credential endpoint; pages import it as an ES module. A browser
// that has it asks again with If-None-Match and gets 304 while it is unchanged.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.Handle("GET /cfturn.js", turnjs.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/cfturn.js")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/cfturn.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// 200 text/javascript; charset=utf-8 public, max-age=86400
	// 304
}
