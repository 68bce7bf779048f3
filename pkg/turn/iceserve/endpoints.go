package iceserve

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Identity prefixes keep the modes' callers apart from the browsers' and from each other: a TURN
// REST username "alice" and a browser identity "alice" share no cache entry and no limit. They
// start with a NUL byte, which no header carries and ServeHTTP refuses in a browser identity, so
// a browser cannot name itself after a mode's caller.
const (
	reservedIdentityStart  = "\x00"
	turnRESTIdentityPrefix = reservedIdentityStart + "turn-rest:"
	matrixIdentityPrefix   = reservedIdentityStart + "matrix:"
)

// Matrix's client-server API paths that answer TURN credentials.
var MatrixTURNServerPaths = []string{"/_matrix/client/v3/voip/turnServer", "/_matrix/client/r0/voip/turnServer"}

// serveFunc answers a request with the browser answer for identity, through the handler's cache,
// limits, mint budget and store, or with the handler's refusal.
type serveFunc func(w http.ResponseWriter, r *http.Request, identity string)

// refusedFunc counts and logs (sampled) a refusal made by an endpoint before the handler's path.
type refusedFunc func(r *http.Request, reason string, status int)

// capture records what the handler's path answered, to be rewritten in another shape.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newCapture() *capture { return &capture{header: make(http.Header)} }

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}

// browserAnswer reads the handler's browser answer, {"iceServers": [...], "expiresAt": n}.
func browserAnswer(body []byte) ([]turn.ICEServer, time.Time, error) {
	var servers turn.ICEServers
	if err := json.Unmarshal(body, &servers); err != nil {
		return nil, time.Time{}, err
	}
	var exp struct {
		ExpiresAt int64 `json:"expiresAt"`
	}
	if err := json.Unmarshal(body, &exp); err != nil || exp.ExpiresAt == 0 {
		return nil, time.Time{}, errors.New("answer without expiresAt")
	}
	return servers.Servers, time.Unix(exp.ExpiresAt, 0), nil
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// turnRESTEndpoint answers the TURN REST API (see ParseTURNRESTRequest) from the handler's path.
type turnRESTEndpoint struct {
	keys        *TURNRESTKeys
	maxUsername int
	serve       serveFunc
	refused     refusedFunc
	now         func() time.Time
}

func (e *turnRESTEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	username, refusal := ParseTURNRESTRequest(r, e.keys, e.maxUsername)
	if refusal != nil {
		e.refused(r, refusal.Reason, refusal.Status)
		if refusal.Status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, POST")
		}
		writeJSONBody(w, refusal.Status, map[string]string{"error": refusal.Message})
		return
	}
	c := newCapture()
	e.serve(c, r, turnRESTIdentityPrefix+username)
	if c.status != http.StatusOK {
		// The handler's refusal, already counted and logged: passed on as it is.
		copyHeader(w.Header(), c.header, "Retry-After", "Content-Type", "Cache-Control")
		w.WriteHeader(c.status)
		w.Write(c.body.Bytes())
		return
	}
	servers, expires, err := browserAnswer(c.body.Bytes())
	var answer TURNRESTAnswer
	if err == nil {
		// The handler dropped port 53 already, or was told to keep it.
		answer, err = NewTURNRESTAnswer(servers, expires, e.now(), true)
	}
	if err != nil {
		e.refused(r, "no_turn_server", http.StatusBadGateway)
		writeJSONBody(w, http.StatusBadGateway, map[string]string{"error": "no TURN server in the answer"})
		return
	}
	writeJSONBody(w, http.StatusOK, answer)
}

func copyHeader(dst, src http.Header, names ...string) {
	for _, n := range names {
		if v := src.Values(n); len(v) > 0 {
			dst[http.CanonicalHeaderKey(n)] = v
		}
	}
}

// matrixEndpoint answers GET /_matrix/client/{v3,r0}/voip/turnServer for the Matrix user the
// access token belongs to, verified at the homeserver.
type matrixEndpoint struct {
	verifier *MatrixVerifier
	serve    serveFunc
	refused  refusedFunc
	now      func() time.Time
	cause    func(*http.Request, string) // logs why the homeserver could not say
}

func (e *matrixEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Matrix clients run in browsers on other origins (Element on app.element.io calling
	// matrix.example.org); the client-server API answers CORS for any origin, as the spec says.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Requested-With")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet:
	default:
		e.refused(r, "method", http.StatusMethodNotAllowed)
		h.Set("Allow", "GET, OPTIONS")
		writeJSONBody(w, http.StatusMethodNotAllowed, MatrixError{"M_UNRECOGNIZED", "Use GET"})
		return
	}
	token := MatrixAccessToken(r)
	if token == "" {
		e.refused(r, "missing_token", http.StatusUnauthorized)
		writeJSONBody(w, http.StatusUnauthorized, MatrixError{"M_MISSING_TOKEN", "Missing access token"})
		return
	}
	user, err := e.verifier.Verify(r.Context(), token)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		status, body, retryAfter := MatrixRefusal(err)
		reason := "homeserver_unavailable"
		switch status {
		case http.StatusUnauthorized:
			reason = "unknown_token"
		case http.StatusForbidden:
			reason = "forbidden"
		}
		var down *MatrixUnavailableError
		if errors.As(err, &down) {
			e.cause(r, down.Reason)
		}
		e.refused(r, reason, status)
		if retryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(max(1, int((retryAfter+time.Second-1)/time.Second))))
		}
		writeJSONBody(w, status, body)
		return
	}
	c := newCapture()
	e.serve(c, r, matrixIdentityPrefix+user)
	if c.status != http.StatusOK {
		writeMatrixFromRefusal(w, c)
		return
	}
	servers, expires, err := browserAnswer(c.body.Bytes())
	var answer TURNRESTAnswer
	if err == nil {
		answer, err = NewTURNRESTAnswer(servers, expires, e.now(), true)
	}
	if err != nil {
		e.refused(r, "no_turn_server", http.StatusBadGateway)
		writeJSONBody(w, http.StatusBadGateway, MatrixError{"M_UNKNOWN", "No TURN server in the answer"})
		return
	}
	writeJSONBody(w, http.StatusOK, answer)
}

// writeMatrixFromRefusal rewrites the handler's refusal ({"error": "..."}) as a Matrix error:
// 429 M_LIMIT_EXCEEDED with retry_after_ms, other statuses M_UNKNOWN (M_FORBIDDEN for 403).
func writeMatrixFromRefusal(w http.ResponseWriter, c *capture) {
	var in struct {
		Error string `json:"error"`
	}
	json.Unmarshal(c.body.Bytes(), &in)
	msg := in.Error
	if msg == "" {
		msg = strings.ToLower(http.StatusText(c.status))
	}
	copyHeader(w.Header(), c.header, "Retry-After")
	retrySecs, _ := strconv.Atoi(c.header.Get("Retry-After"))
	switch {
	case c.status == http.StatusTooManyRequests:
		writeJSONBody(w, c.status, struct {
			MatrixError
			RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
		}{MatrixError{"M_LIMIT_EXCEEDED", msg}, int64(retrySecs) * 1000})
	case c.status == http.StatusForbidden:
		writeJSONBody(w, c.status, MatrixError{"M_FORBIDDEN", msg})
	default:
		writeJSONBody(w, c.status, MatrixError{"M_UNKNOWN", msg})
	}
}
