// Package browser serves an example page that shows a TURN credential endpoint working end to
// end in a browser: it fetches iceServers, through cfturn.js at ../cfturn.js, from the endpoint (by default the page's parent path,
// where `cfturn serve-ice --example-page` serves them; ?endpoint=URL for another), connects two
// RTCPeerConnections with iceTransportPolicy "relay", so that every packet goes through TURN, and
// shows the selected candidate pair and the round-trip time of a data channel message.
//
// The page reports its outcome in window.cfturnResult as well, for tests that drive a browser.
package browser

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Handler serves the page at any path it is mounted on.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the example page answers GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page's script is inline, imports cfturn.js from its own origin, and talks only to its
		// own origin unless ?endpoint= says otherwise.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src *")
		w.Write(page)
	})
}
