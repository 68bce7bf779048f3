// Package turnjs serves cfturn.js, the browser helper that keeps a WebRTC call's TURN
// credentials fresh: it fetches new ones from a credential endpoint (such as cfturn serve-ice)
// before the old ones expire, hands them to the RTCPeerConnection with setConfiguration and
// restarts ICE, restarts ICE with fresh credentials when ICE fails, and honours Retry-After.
//
// The script is one ES module with no dependencies and no build step, typed with JSDoc for
// editors. Serve it from your own server with Handler (cfturn serve-ice does at /cfturn.js) and
// import it from the page:
//
//	import {fetchIceServers, keepFresh} from "/cfturn.js";
//
// It lives beside the other turn packages rather than in the credential server's, because a
// page may use it with any endpoint that answers {"iceServers": [...], "expiresAt": ...}.
package turnjs

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed cfturn.js
var script []byte

// etag names this build's script: a hash of its bytes, so it changes exactly when they do.
var etag = func() string {
	sum := sha256.Sum256(script)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// MaxAge is how long browsers and caches keep the script without asking again. After it they
// revalidate with If-None-Match and get 304 while the script is unchanged, so a new release
// reaches pages within a day.
const MaxAge = 24 * time.Hour

// Script returns a copy of cfturn.js.
func Script() []byte { return bytes.Clone(script) }

// ETag returns the entity tag Handler sends, quoted.
func ETag() string { return etag }

// Handler serves cfturn.js at any path it is mounted on: GET and HEAD, with Cache-Control
// max-age=MaxAge and an ETag, answering 304 Not Modified to a matching If-None-Match. Any
// origin may load it (Access-Control-Allow-Origin: *): module scripts are fetched with CORS, and
// the script is public.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: cfturn.js is served to GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(MaxAge/time.Second)))
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("X-Content-Type-Options", "nosniff")
		if matches(r.Header.Values("If-None-Match")) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(script)))
		if r.Method == http.MethodGet {
			w.Write(script)
		}
	})
}

// matches reports whether an If-None-Match header names the script's ETag (weak or strong, as
// RFC 9110 compares for If-None-Match) or is "*".
func matches(values []string) bool {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == etag || tag == "*" {
				return true
			}
		}
	}
	return false
}
