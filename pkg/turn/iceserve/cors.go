package iceserve

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// checkOrigin accepts "*" or an origin as browsers send it: scheme://host[:port], lower case,
// nothing after. It says how to fix anything else.
func checkOrigin(op, origin string) error {
	if origin == "*" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return invalidArg(op, "allowed origin %q is not scheme://host[:port], e.g. https://app.example.com", origin)
	}
	want := u.Scheme + "://" + strings.ToLower(u.Host)
	if origin != want {
		return invalidArg(op, "allowed origin %q never matches a browser's Origin header; use %q (no path, no trailing slash, lower case)", origin, want)
	}
	return nil
}

// cors sets the CORS headers for an allowed origin and reports whether the request may proceed.
// A request without Origin is not a cross-origin browser request and proceeds.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header["Origin"]
	switch {
	case len(origin) == 0:
		return true
	case len(origin) > 1:
		return false // no browser sends two: refused as an origin not allowed
	}
	hdr := w.Header()
	hdr["Vary"] = varyOrigin
	if !h.anyOrigin && !slices.Contains(h.cfg.AllowedOrigins, origin[0]) {
		// Browsers send Origin on same-origin POSTs too; those need no CORS headers.
		return sameOrigin(r, origin[0])
	}
	hdr["Access-Control-Allow-Origin"] = origin
	if h.cfg.AllowCredentials {
		hdr["Access-Control-Allow-Credentials"] = trueValue
	}
	if r.Method == http.MethodOptions {
		hdr["Access-Control-Allow-Methods"] = h.allowMethods
		hdr["Access-Control-Allow-Headers"] = h.allowHeaders
		hdr["Access-Control-Max-Age"] = maxAge
	}
	return true
}

var (
	varyOrigin = []string{"Origin"}
	trueValue  = []string{"true"}
	maxAge     = []string{"600"}
)

// crossSiteGET reports a GET that a browser sent on behalf of another site without CORS, such as
// an <img> or a link: it carries the user's cookies but no Origin, so only Sec-Fetch-Site tells.
func crossSiteGET(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Origin") != "" {
		return false
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "cross-site" || site == "same-site"
}

// preflightHeaders lists the request headers a browser may send: the identity header when the
// handler reads one, and the usual two.
func preflightHeaders(identityHeader string) []string {
	hs := []string{"Authorization", "Content-Type"}
	if identityHeader != "" && !slices.ContainsFunc(hs, func(h string) bool { return strings.EqualFold(h, identityHeader) }) {
		hs = append(hs, http.CanonicalHeaderKey(identityHeader))
	}
	return []string{strings.Join(hs, ", ")}
}

// sameOrigin reports a request from a page of this very host: the browser says so, or the Origin
// names the host the request was sent to.
func sameOrigin(r *http.Request, origin string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && host != "" && strings.EqualFold(host, r.Host)
}
