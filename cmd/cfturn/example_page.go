package main

import (
	"net/http"

	"github.com/cfturn/cfturn/examples/browser"
)

// examplePagePath is where serve-ice --example-page serves the browser example.
const examplePagePath = "/example/"

// examplePage serves the browser example page, which fetches its credentials from serve-ice's
// root.
func examplePage() http.Handler { return browser.Handler() }
