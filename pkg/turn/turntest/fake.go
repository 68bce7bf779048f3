package turntest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/gen/calls"
	"github.com/cfturn/cfturn/gen/callsserver"
	"github.com/cfturn/cfturn/internal/logsample"
	"github.com/cfturn/cfturn/pkg/turn"
)

// Limits that keep the fake's memory bounded whatever its clients do.
const (
	DefaultMaxKeys        = 1000   // keys per account
	maxAccounts           = 1000   // accounts with keys
	maxCredentials        = 10_000 // ICE credentials kept for revocation and relays; the oldest go first (WithMaxCredentials)
	maxBodyBytes          = 64 << 10
	maxNameLen            = 1024   // characters
	MaxTTL                = 172800 // seconds: the 48-hour ceiling of Cloudflare's Realtime TURN FAQ
	errCodeAuthentication = 10000
	errCodeUnauthorized   = 10001
	errCodeBadRequest     = 10002
	errCodeNotFound       = 10006
	errCodeRoute          = 7003
	errCodeNoRoute        = 7000
	errCodeRateLimited    = 10429
	errCodeServer         = 10500
	errCodeLimit          = 10013
)

// Fake is the in-memory state of the Cloudflare TURN APIs and the http.Handler that serves them.
// Key management is served under /client/v4 and ICE credentials under /v1, so the Handler can be
// mounted at the root of any server. A Fake is safe for concurrent use.
type Fake struct {
	token          string
	defaultAccount string
	maxKeys        int
	handler        http.Handler

	now        func() time.Time
	defaultICE []calls.IceServer // Cloudflare's URL set, or the legacy one

	mu        sync.Mutex
	iceURLs   []calls.IceServer          // the answer's servers, before credentials are filled in (SetICEURLs)
	accounts  map[string]map[string]*key // account ID → key ID → key
	byID      map[string]*key
	creds     *credentialTable
	faults    []Fault
	requests  map[string]int // operationId → count
	lastStamp time.Time
	analytics *analytics // the GraphQL Analytics API (analytics*.go)
	failures  *logsample.Log
}

type key struct {
	account, uid, name, secret string
	created, modified          time.Time
}

// Option configures a Fake or a Server.
type Option func(*settings)

type settings struct {
	token, account, addr string
	maxKeys              int
	maxCredentials       int
	now                  func() time.Time
	legacyURLs           bool
	analytics            analyticsLimits
	logger               *slog.Logger
}

// WithToken sets the API token the fake accepts. The default is random.
func WithToken(token string) Option { return func(s *settings) { s.token = token } }

// WithAccountID sets the default account the fake reports. Every well-formed account ID works,
// each with keys of its own; this one is what Server.Client uses.
func WithAccountID(id string) Option { return func(s *settings) { s.account = id } }

// WithMaxKeys sets how many keys one account may hold (DefaultMaxKeys).
func WithMaxKeys(n int) Option { return func(s *settings) { s.maxKeys = n } }

// WithMaxCredentials sets how many ICE credentials the fake keeps (10,000, also when n <= 0 or
// more): once it holds n, minting drops expired ones first, then the oldest. A dropped credential
// is dead (LookupCredential says CredentialUnknown) and revoking it answers 404. A smaller table
// lets a test evict a credential with few mints.
func WithMaxCredentials(n int) Option { return func(s *settings) { s.maxCredentials = n } }

// WithAddr sets the address NewServer listens on (default 127.0.0.1:0, a free loopback port).
func WithAddr(addr string) Option { return func(s *settings) { s.addr = addr } }

// WithClock sets the clock the fake reads to expire ICE credentials (default time.Now), so a
// test can step past a TTL without sleeping.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

func newSettings(opts []Option) settings {
	s := settings{token: randomString(40), account: randomHex(32), maxKeys: DefaultMaxKeys, now: time.Now}
	for _, opt := range opts {
		opt(&s)
	}
	if s.maxCredentials <= 0 || s.maxCredentials > maxCredentials {
		s.maxCredentials = maxCredentials
	}
	return s
}

// New returns a Fake with no keys, to mount its Handler on a server of your own; NewServer starts
// one on a loopback port.
func New(opts ...Option) *Fake {
	s := newSettings(opts)
	iceURLs := cloudflareICEServers
	if s.legacyURLs {
		iceURLs = cloudflareLegacyICEServers
	}
	f := &Fake{
		token:          s.token,
		defaultAccount: s.account,
		maxKeys:        max(s.maxKeys, 1),
		now:            s.now,
		defaultICE:     iceURLs,
		iceURLs:        iceURLs,
		accounts:       make(map[string]map[string]*key),
		byID:           make(map[string]*key),
		creds:          newCredentialTable(s.maxCredentials),
		requests:       make(map[string]int),
		analytics:      newAnalytics(s.analytics),
	}
	onBadParam := func(w http.ResponseWriter, r *http.Request, err error) {
		f.fail(w, http.StatusBadRequest, errCodeRoute, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
	}
	// The generated routes, mounted once per API root; a request reaches only its own API's routes.
	keys, ice := http.NewServeMux(), http.NewServeMux()
	callsserver.HandlerWithOptions(api{f}, callsserver.StdHTTPServerOptions{BaseURL: "/client/v4", BaseRouter: keys, ErrorHandlerFunc: onBadParam})
	callsserver.HandlerWithOptions(api{f}, callsserver.StdHTTPServerOptions{BaseURL: "/v1", BaseRouter: ice, ErrorHandlerFunc: onBadParam})
	f.failures = logsample.New(s.logger, s.now, logsample.Config{Message: "turntest: answered a failure", Unlogged: "turntest: failures not logged", KindKey: "status", Burst: failureLogBurst, Interval: failureLogInterval})
	f.handler = logged(f.failures, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/client/v4/accounts/") && routed(keys, r):
			keys.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/v1/turn/") && routed(ice, r):
			ice.ServeHTTP(w, r)
		case p == "/client/v4/graphql":
			f.serve(w, r, OpGraphQL, f.serveGraphQL)
		case strings.HasPrefix(p, "/client/v4/"):
			f.fail(w, http.StatusNotFound, errCodeNoRoute, "No route for that URI")
		default:
			plainError(w, "Not found", http.StatusNotFound)
		}
	}))
	return f
}

// routed reports whether mux has a route for r's method and path.
func routed(mux *http.ServeMux, r *http.Request) bool {
	_, pattern := mux.Handler(r)
	return pattern != ""
}

// Handler returns the fake's http.Handler.
func (f *Fake) Handler() http.Handler { return f.handler }

// Token returns the API token the fake accepts.
func (f *Fake) Token() string { return f.token }

// AccountID returns the fake's default account.
func (f *Fake) AccountID() string { return f.defaultAccount }

// Keys returns the keys of an account, oldest first, without secrets.
func (f *Fake) Keys(accountID string) []turn.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listLocked(accountID)
}

// Requests returns how many requests each operation (by operationId) has received.
func (f *Fake) Requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.requests)
}

// CustomIdentifier returns the customIdentifier an ICE credential was generated with, and whether
// the fake knows the credential.
func (f *Fake) CustomIdentifier(username string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creds.get(username)
	if c == nil {
		return "", false
	}
	return c.customIdentifier, true
}

// Revoked reports whether an ICE credential was issued and then revoked.
func (f *Fake) Revoked(username string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creds.get(username)
	return c != nil && c.revoked
}

func (f *Fake) listLocked(accountID string) []turn.Key {
	var out []turn.Key
	for _, k := range f.accounts[accountID] {
		out = append(out, turn.Key{ID: k.uid, Name: k.name, Created: k.created, Modified: k.modified})
	}
	slices.SortFunc(out, func(a, b turn.Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// serve counts the request, applies a queued fault if one matches, and otherwise handles it.
func (f *Fake) serve(w http.ResponseWriter, r *http.Request, op Operation, handle http.HandlerFunc) {
	f.mu.Lock()
	f.requests[string(op)]++
	f.mu.Unlock()
	w.Header().Set("Cf-Ray", randomHex(16)+"-FAKE")
	if ft, ok := f.takeFault(op); ok {
		f.applyFault(w, r, op, ft, handle)
		return
	}
	handle(w, r)
}

// checkToken answers 401 or 403 unless the request carries the API token.
func (f *Fake) checkToken(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		f.fail(w, http.StatusUnauthorized, errCodeUnauthorized, "Unable to authenticate request")
		return false
	case tok != f.token:
		f.fail(w, http.StatusForbidden, errCodeAuthentication, "Authentication error")
		return false
	}
	return true
}

// authorized checks the token and the IDs of a key-management request, answering when they fail.
func (f *Fake) authorized(w http.ResponseWriter, r *http.Request, accountID string, keyID ...string) bool {
	return f.checkToken(w, r) && f.checkIDs(w, r, accountID, keyID...)
}

// checkIDs answers 400 unless the account ID (and the key ID, when given) are well formed.
func (f *Fake) checkIDs(w http.ResponseWriter, r *http.Request, accountID string, keyID ...string) bool {
	ok := len(accountID) <= 32 && alnum(accountID)
	for _, id := range keyID {
		ok = ok && len(id) == 32 && alnum(id)
	}
	if !ok {
		f.fail(w, http.StatusBadRequest, errCodeRoute, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
	}
	return ok
}

// readName decodes an optional {"name": string} body.
func (f *Fake) readName(w http.ResponseWriter, r *http.Request) (name *string, ok bool) {
	var body struct {
		Name *string `json:"name"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	switch {
	case err != nil:
		f.fail(w, http.StatusBadRequest, errCodeBadRequest, "Request body too large or unreadable")
		return nil, false
	case len(bytes.TrimSpace(raw)) == 0:
		return nil, true
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		f.failAt(w, http.StatusBadRequest, errCodeBadRequest, "Malformed JSON in request body: name must be a string", "/name")
		return nil, false
	}
	if body.Name != nil && utf8.RuneCountInString(*body.Name) > maxNameLen {
		f.failAt(w, http.StatusBadRequest, errCodeBadRequest, fmt.Sprintf("name is longer than %d characters", maxNameLen), "/name")
		return nil, false
	}
	return body.Name, true
}

// api is the fake as the generated server interface, kept out of Fake's exported API: its methods
// are the spec's operations, with the generated (w, r, parameters) signatures.
type api struct{ *Fake }

var _ callsserver.ServerInterface = api{}

// ListTurnKeys implements callsserver.ServerInterface.
func (f api) ListTurnKeys(w http.ResponseWriter, r *http.Request, accountID string) {
	f.serve(w, r, OpListTurnKeys, func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r, accountID) {
			return
		}
		f.mu.Lock()
		list := f.listLocked(accountID)
		f.mu.Unlock()
		out := make([]calls.TurnKey, len(list))
		for i, k := range list {
			out[i] = calls.TurnKey{Uid: k.ID, Name: k.Name, Created: k.Created, Modified: k.Modified}
		}
		f.ok(w, http.StatusOK, calls.TurnKeyListResponse{Success: true, Errors: []calls.Message{}, Messages: []calls.Message{}, Result: out})
	})
}

// CreateTurnKey implements callsserver.ServerInterface.
func (f api) CreateTurnKey(w http.ResponseWriter, r *http.Request, accountID string) {
	f.serve(w, r, OpCreateTurnKey, func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r, accountID) {
			return
		}
		name, ok := f.readName(w, r)
		if !ok {
			return
		}
		f.mu.Lock()
		keys := f.accounts[accountID]
		switch {
		case keys == nil && len(f.accounts) >= maxAccounts:
			f.mu.Unlock()
			f.fail(w, http.StatusBadRequest, errCodeLimit, "The fake holds keys for too many accounts")
			return
		case len(keys) >= f.maxKeys:
			f.mu.Unlock()
			f.fail(w, http.StatusBadRequest, errCodeLimit, fmt.Sprintf("Account has reached its limit of %d TURN keys", f.maxKeys))
			return
		case keys == nil:
			keys = make(map[string]*key)
			f.accounts[accountID] = keys
		}
		now := f.stampLocked()
		k := &key{account: accountID, uid: randomHex(32), secret: randomHex(64), created: now, modified: now}
		if name != nil {
			k.name = *name
		}
		keys[k.uid] = k
		f.byID[k.uid] = k
		f.mu.Unlock()
		f.ok(w, http.StatusCreated, calls.TurnKeyCreateResponse{
			Success: true, Errors: []calls.Message{}, Messages: []calls.Message{},
			Result: calls.TurnKeyWithSecret{Uid: k.uid, Name: k.name, Key: k.secret, Created: k.created, Modified: k.modified},
		})
	})
}

// GetTurnKey implements callsserver.ServerInterface.
func (f api) GetTurnKey(w http.ResponseWriter, r *http.Request, accountID, keyID string) {
	f.serve(w, r, OpGetTurnKey, func(w http.ResponseWriter, r *http.Request) {
		if f.authorized(w, r, accountID, keyID) {
			f.withKey(w, accountID, keyID, func(*key) {})
		}
	})
}

// UpdateTurnKey implements callsserver.ServerInterface.
func (f api) UpdateTurnKey(w http.ResponseWriter, r *http.Request, accountID, keyID string) {
	f.serve(w, r, OpUpdateTurnKey, func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r, accountID, keyID) {
			return
		}
		name, ok := f.readName(w, r)
		if !ok {
			return
		}
		f.withKey(w, accountID, keyID, func(k *key) {
			if name != nil {
				k.name = *name
				k.modified = f.stampLocked()
			}
		})
	})
}

// DeleteTurnKey implements callsserver.ServerInterface.
func (f api) DeleteTurnKey(w http.ResponseWriter, r *http.Request, accountID, keyID string) {
	f.serve(w, r, OpDeleteTurnKey, func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r, accountID, keyID) {
			return
		}
		f.withKey(w, accountID, keyID, func(k *key) {
			delete(f.accounts[accountID], keyID)
			if len(f.accounts[accountID]) == 0 {
				delete(f.accounts, accountID)
			}
			delete(f.byID, keyID)
		})
	})
}

// withKey runs change on the key under the lock and answers with the key, or 404.
func (f *Fake) withKey(w http.ResponseWriter, accountID, keyID string, change func(*key)) {
	f.mu.Lock()
	k := f.accounts[accountID][keyID]
	if k == nil {
		f.mu.Unlock()
		f.fail(w, http.StatusNotFound, errCodeNotFound, "TURN key not found")
		return
	}
	change(k)
	out := calls.TurnKey{Uid: k.uid, Name: k.name, Created: k.created, Modified: k.modified}
	f.mu.Unlock()
	f.ok(w, http.StatusOK, calls.TurnKeyResponse{Success: true, Errors: []calls.Message{}, Messages: []calls.Message{}, Result: out})
}

// liveKey returns the key whose ID and secret the ICE request names, or answers 401/404.
func (f *Fake) liveKey(w http.ResponseWriter, r *http.Request, keyID string) *key {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	k := f.byID[keyID]
	f.mu.Unlock()
	switch {
	case tok == "":
		plainError(w, "Unauthorized: missing bearer token", http.StatusUnauthorized)
		return nil
	case k == nil:
		plainError(w, "Not found: no such TURN key", http.StatusNotFound)
		return nil
	case tok != k.secret:
		plainError(w, "Unauthorized: wrong key secret", http.StatusUnauthorized)
		return nil
	}
	return k
}

// GenerateIceServers implements callsserver.ServerInterface.
func (f api) GenerateIceServers(w http.ResponseWriter, r *http.Request, keyID string) {
	f.serve(w, r, OpGenerateIceServers, func(w http.ResponseWriter, r *http.Request) {
		k := f.liveKey(w, r, keyID)
		if k == nil {
			return
		}
		var body struct {
			TTL              *json.Number `json:"ttl"`
			CustomIdentifier string       `json:"customIdentifier"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil || body.TTL == nil {
			plainError(w, "Bad request: body must be {\"ttl\": seconds}", http.StatusBadRequest)
			return
		}
		ttl, err := body.TTL.Int64()
		if err != nil || ttl < 1 || ttl > MaxTTL {
			plainError(w, fmt.Sprintf("Bad request: ttl must be a whole number of seconds from 1 to %d", MaxTTL), http.StatusBadRequest)
			return
		}
		if utf8.RuneCountInString(body.CustomIdentifier) > turn.MaxCustomIdentifierLen {
			plainError(w, fmt.Sprintf("Bad request: customIdentifier over %d characters", turn.MaxCustomIdentifierLen), http.StatusBadRequest)
			return
		}
		c := &credential{username: randomHex(32), secret: randomHex(64), keyID: k.uid, customIdentifier: body.CustomIdentifier}
		f.mu.Lock()
		now := f.now()
		c.expires = now.Add(time.Duration(ttl) * time.Second)
		f.creds.add(c, now)
		iceURLs := f.iceURLs
		f.mu.Unlock()
		servers := make([]calls.IceServer, len(iceURLs))
		for i, s := range iceURLs {
			servers[i] = calls.IceServer{Urls: slices.Clone(s.Urls)}
			if strings.HasPrefix(s.Urls[0], "turn") {
				servers[i].Username, servers[i].Credential = &c.username, &c.secret
			}
		}
		f.ok(w, http.StatusCreated, calls.IceServersResponse{IceServers: servers})
	})
}

// RevokeIceCredential implements callsserver.ServerInterface. A credential the fake no longer holds
// (evicted by 10,000 newer ones, or dropped after it expired) answers 404, as one never minted
// does: the fake cannot tell them apart. Such a credential is dead already: LookupCredential
// says CredentialUnknown, so a relay refuses it and stops its allocations.
func (f api) RevokeIceCredential(w http.ResponseWriter, r *http.Request, keyID, username string) {
	f.serve(w, r, OpRevokeIceCredential, func(w http.ResponseWriter, r *http.Request) {
		k := f.liveKey(w, r, keyID)
		if k == nil {
			return
		}
		f.mu.Lock()
		c := f.creds.get(username)
		if c != nil && c.keyID == k.uid {
			c.revoked = true
		}
		f.mu.Unlock()
		if c == nil || c.keyID != k.uid {
			plainError(w, "Not found: no such credential for this key", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// stampLocked returns the current time, strictly after the previous stamp, so modified always
// advances.
func (f *Fake) stampLocked() time.Time {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(f.lastStamp) {
		now = f.lastStamp.Add(time.Microsecond)
	}
	f.lastStamp = now
	return now
}

func (f *Fake) ok(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		plainError(w, "fake: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func (f *Fake) fail(w http.ResponseWriter, status, code int, msg string) {
	f.failAt(w, status, code, msg, "")
}

func (f *Fake) failAt(w http.ResponseWriter, status, code int, msg, pointer string) {
	noteFailure(w, msg)
	m := calls.Message{Code: code, Message: msg}
	if pointer != "" {
		m.Source = &struct {
			Pointer *string `json:"pointer,omitempty"`
		}{Pointer: &pointer}
	}
	f.ok(w, status, calls.FailureEnvelope{Success: calls.False, Errors: []calls.Message{m}, Messages: []calls.Message{}})
}

// applyFault answers r according to ft.
func (f *Fake) applyFault(w http.ResponseWriter, r *http.Request, op Operation, ft Fault, handle http.HandlerFunc) {
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	var rec *httptest.ResponseRecorder
	if ft.AfterProcessing || ft.Body == BodyTruncated {
		rec = httptest.NewRecorder()
		handle(rec, r)
	}
	if ft.Drop {
		drop(w)
		return
	}
	if ft.RetryAfter != "" {
		w.Header().Set("Retry-After", ft.RetryAfter)
	}
	if ft.RedirectTo != "" {
		http.Redirect(w, r, ft.RedirectTo, http.StatusTemporaryRedirect)
		return
	}
	plain := op == OpGenerateIceServers || op == OpRevokeIceCredential
	status := ft.Status
	if status == 0 {
		status = http.StatusOK
	}
	switch ft.Body {
	case BodyHTML:
		if ft.Status == 0 {
			status = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%d: %s</title></head><body><h1>Error %d</h1><p>Ray ID: %s</p></body></html>\n",
			status, http.StatusText(status), status, w.Header().Get("Cf-Ray"))
	case BodyEmpty:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
	case BodyTruncated:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if ft.Status != 0 {
			rec.Code = ft.Status
		}
		body := rec.Body.Bytes()
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
	case BodySuccessFalse:
		f.fail(w, status, errCodeServer, "Internal error, but the status says OK")
	case BodyOversize:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":[],"padding":"`)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < turn.DefaultMaxResponseBytes+(1<<20); n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	default:
		switch {
		case ft.Status != 0 && plain:
			plainError(w, http.StatusText(ft.Status), ft.Status)
		case ft.Status != 0:
			f.fail(w, ft.Status, codeFor(ft.Status), http.StatusText(ft.Status))
		case rec != nil:
			copyRecorded(w, rec)
		default:
			handle(w, r)
		}
	}
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func codeFor(status int) int {
	switch {
	case status == http.StatusUnauthorized:
		return errCodeUnauthorized
	case status == http.StatusForbidden:
		return errCodeAuthentication
	case status == http.StatusNotFound:
		return errCodeNotFound
	case status == http.StatusTooManyRequests:
		return errCodeRateLimited
	case status >= 500:
		return errCodeServer
	}
	return errCodeBadRequest
}

func alnum(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = tokenAlphabet[int(b[i])%len(tokenAlphabet)]
	}
	return string(b)
}
