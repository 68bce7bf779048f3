package iceserve

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// CoturnMode says how a Coturn provider joins Cloudflare's answers.
type CoturnMode int

const (
	// CoturnMerge puts coturn's servers in every answer beside Cloudflare's, each with its own
	// credential. The merged answer is cached as one.
	CoturnMerge CoturnMode = iota
	// CoturnFallback answers coturn's servers alone, only while Cloudflare cannot be minted from
	// (breaker open after an upstream failure, mint budget spent, upstream down, slow or busy) and
	// no cached credential can be served; the next request after Cloudflare recovers gets
	// Cloudflare again. Fallback answers are not cached. Falling back and recovering are logged
	// once per spell, and Stats.CoturnFallbacks counts the answers.
	CoturnFallback
)

func (cfg *Config) checkCoturn(op string) error {
	switch {
	case cfg.CoturnMode != CoturnMerge && cfg.CoturnMode != CoturnFallback:
		return invalidArg(op, "CoturnMode %d is not CoturnMerge or CoturnFallback", cfg.CoturnMode)
	case cfg.Coturn != nil && cfg.Coturn.TTL() < cfg.TTL:
		return invalidArg(op, "the Coturn provider's TTL %v is below TTL %v: cached answers would carry expired coturn credentials", cfg.Coturn.TTL(), cfg.TTL)
	}
	return nil
}

// merge adds coturn's server to Cloudflare's answer in CoturnMerge mode. An answer whose URLs
// overlap coturn's is refused: a client would try one provider's credential on the other's
// server.
func (h *Handler) merge(ice turn.ICEServers, identity string, sent time.Time) (turn.ICEServers, error) {
	if h.cfg.Coturn == nil || h.cfg.CoturnMode != CoturnMerge {
		return ice, nil
	}
	var urls []string
	for _, s := range ice.Servers {
		urls = append(urls, s.URLs...)
	}
	if overlap := OverlappingURLs(urls, h.cfg.Coturn.URLs()); len(overlap) > 0 {
		return ice, errUnusable{"coturn URL " + overlap[0] + " is also in Cloudflare's answer; name your own TURN server in the coturn URLs"}
	}
	server, _ := h.cfg.Coturn.Mint(identity, sent)
	ice.Servers = append(ice.Servers, server)
	return ice, nil
}

// fallback answers coturn's servers alone when the mint for id failed and CoturnFallback is on.
// It reports whether it answered.
func (h *Handler) fallback(w http.ResponseWriter, r *http.Request, id string, err error) bool {
	if h.cfg.Coturn == nil || h.cfg.CoturnMode != CoturnFallback {
		return false
	}
	now := h.cfg.Now()
	server, _ := h.cfg.Coturn.Mint(id, now)
	c, rerr := h.render(turn.ICEServers{Servers: []turn.ICEServer{server}}, now)
	if rerr != nil {
		// The coturn URLs are checked at start; nothing here depends on the request.
		h.log(r.Context(), slog.LevelError, "iceserve: coturn fallback unusable", "error", rerr.Error())
		return false
	}
	h.fallbacks.Add(1)
	if !h.fallingBack.Swap(true) {
		h.log(r.Context(), slog.LevelWarn, "iceserve: Cloudflare cannot be minted from; answering coturn's servers",
			"class", h.classify(err))
	}
	h.write(w, c.Body)
	return true
}

// recovered logs the end of a fallback spell, after a successful mint.
func (h *Handler) recovered(ctx context.Context) {
	if h.cfg.Coturn != nil && h.cfg.CoturnMode == CoturnFallback && h.fallingBack.Swap(false) {
		h.log(ctx, slog.LevelInfo, "iceserve: Cloudflare minting again; coturn fallback over", "fallbacks", h.fallbacks.Load())
	}
}

// serveAuthenticated answers identity, already authenticated by a mode (a TURN REST key, a
// Matrix token), through the handler's cache, limits, mint budget and store. The source network
// share does not apply: these callers reach the handler through one server (Janus) or one
// reverse proxy, whose network would be everyone's.
func (h *Handler) serveAuthenticated(w http.ResponseWriter, r *http.Request, identity string) {
	var m mintRequest
	if h.cfg.CustomIdentifier != nil {
		m.tag = h.cfg.CustomIdentifier(identity)
		if err := (turn.GenerateICEServersParams{KeyID: h.cfg.KeyID, KeySecret: h.cfg.KeySecret, TTL: h.cfg.TTL, CustomIdentifier: m.tag}).Validate(); err != nil {
			h.refuse(w, r, refusedBadCustomIdentifier, http.StatusBadRequest, "no valid customIdentifier for this caller", 0)
			return
		}
	}
	h.answer(w, r, identity, m)
}

var refusalByName = func() map[string]int {
	m := make(map[string]int, numRefusals)
	for i, n := range refusalNames {
		m[n] = i
	}
	return m
}()

// refusedBy counts and logs (sampled, as every refusal) a refusal a mode made before the
// handler's path; nothing was minted for it.
func (h *Handler) refusedBy(r *http.Request, reason string, status int) {
	i, ok := refusalByName[reason]
	if !ok {
		i = refusedBadRequest
	}
	h.count(i)
	if h.cfg.Logger != nil {
		h.logRefusal(r.Context(), i, status)
	}
}

// logHomeserver logs why the homeserver could not vouch for a token (a timeout, an oversized or
// garbled answer, a status, the lookup budget), one line a second, so that an operator can tell
// an attack on the budget from a homeserver that is down.
func (h *Handler) logHomeserver(r *http.Request, cause string) {
	if unlogged, ok := h.homeserverLog.take(h.cfg.Now()); ok {
		h.log(r.Context(), slog.LevelWarn, "iceserve: Matrix homeserver could not vouch for a token", "cause", cause, "unlogged_since", unlogged)
	}
}

// TURNRESTHandler returns the TURN REST API endpoint (draft-uberti-behave-turn-rest-00, as coturn
// and Janus's turn_rest_api speak it) on h: GET or POST with service=turn, username= and the API
// key as key=, api= or a bearer token (see ParseTURNRESTRequest), answered
//
//	{"username": "...", "password": "...", "ttl": <seconds left>, "uris": ["turn:...", "turns:..."]}
//
// The identity is "turn-rest:" + username (no username is one shared identity), cached, limited
// and counted as a browser's is, in h's store. A missing or wrong key is 401 and reaches nothing
// else; h's own refusals (429, 503 with Retry-After) are passed on as they are.
func (h *Handler) TURNRESTHandler(keys *TURNRESTKeys) http.Handler {
	return &turnRESTEndpoint{keys: keys, maxUsername: h.cfg.MaxIdentityBytes, serve: h.serveAuthenticated, refused: h.refusedBy, now: h.cfg.Now}
}

// MatrixHandler returns the endpoint of Matrix's GET /_matrix/client/v3/voip/turnServer (and
// /r0/; see MatrixTURNServerPaths), for a homeserver's reverse proxy to route to: the access
// token is verified with v, the identity is "matrix:" + the user ID, and the answer is Matrix's
// {"username", "password", "uris", "ttl"}. Errors are Matrix's: 401 M_MISSING_TOKEN or
// M_UNKNOWN_TOKEN, 403 M_FORBIDDEN, 429 M_LIMIT_EXCEEDED with retry_after_ms, 503 M_UNKNOWN when
// the homeserver or the upstream cannot answer; none of them mints. CORS is answered for any
// origin, as the client-server API does.
func (h *Handler) MatrixHandler(v *MatrixVerifier) http.Handler {
	return &matrixEndpoint{verifier: v, serve: h.serveAuthenticated, refused: h.refusedBy, now: h.cfg.Now, cause: h.logHomeserver}
}
