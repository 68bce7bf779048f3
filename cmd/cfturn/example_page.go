package main

import (
	"net/http"

	"github.com/cfturn/cfturn/examples/browser"
)

// examplePagePath is where serve-ice --example-page serves the browser example.
const examplePagePath = "/example/"

// withExamplePage serves the browser example page at examplePagePath and h everywhere else; the
// page fetches its credentials from h at the root.
func withExamplePage(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(examplePagePath, browser.Handler())
	mux.Handle("/", h)
	return mux
}
