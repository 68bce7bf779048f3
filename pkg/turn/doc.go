// Package turn is a client for Cloudflare Realtime TURN: it manages TURN keys through the Cloudflare
// API and mints short-lived ICE credentials for WebRTC clients.
//
// A backend creates a TURN key once, keeps the key's secret on the server, and for every browser or
// app that joins a call mints fresh credentials with GenerateICEServers. The result marshals to the
// RTCConfiguration that new RTCPeerConnection(config) takes.
//
// # Authentication
//
// Key management uses an API token: ListKeys, AllKeys and GetKey need the "Calls Read" or "Calls
// Write" permission, CreateKey, UpdateKey and DeleteKey need "Calls Write". Pass it with
// WithAPIToken or set CLOUDFLARE_API_TOKEN. The account
// comes from each call's AccountID, else WithAccountID or CLOUDFLARE_ACCOUNT_ID. ICE calls
// (GenerateICEServers, RevokeICECredential) are authorised by the TURN key's own secret, passed per
// call, and need no API token.
//
// Credentials are of type Secret, which prints as [REDACTED] under fmt, slog and encoding/json and
// is read only with Reveal. Errors and log records never contain a credential.
//
// # Errors
//
// Every failure is an error that says what the client was doing, e.g.
//
//	turn: create key: 403 Forbidden: Authentication error (10000) [cf-ray 8f1e2d3c4b5a6978-SJC]
//
// Match classes with errors.Is (ErrNotFound, ErrUnauthorized, ErrForbidden, ErrRateLimited,
// ErrBadRequest, ErrServer, ErrUnexpectedResponse, ErrInvalidArgument, ErrNoAPIToken) and read the
// details (status, envelope errors and messages, cf-ray, Retry-After) with errors.As and *APIError.
// A body that is not the documented JSON — an HTML error page, an empty or truncated body, success
// false with status 200 — is an *APIError too, never a zero-value success. Malformed arguments are
// rejected before anything is sent, with ErrInvalidArgument and the name of the bad value: a
// token or key secret with white space (such as the newline a file read leaves), control or
// non-ASCII characters, a key secret that is not 64 characters, a TTL over Cloudflare's 48 hours
// (MaxICETTL). After a 401 or 403, APIError.Hint says which credential or permission to check. A
// cancelled context gives an error that matches context.Canceled or context.DeadlineExceeded.
//
// # Retries
//
// Failed calls are retried up to 3 times (DefaultMaxRetries; WithRetry, 0 turns retries off),
// waiting an exponential backoff starting at 250ms and capped at 5s, with full jitter (WithBackoff),
// or the server's Retry-After up to 30s (WithRetryAfterMax), and never past the context's deadline.
// When the context has no deadline, each attempt has a 30s timeout (WithTimeout).
//
// GetKey, ListKeys, UpdateKey, DeleteKey and the ICE calls are retried on 429, 5xx and transport
// errors. CreateKey makes a secret that is shown only once, so it is retried only when the request
// surely never reached Cloudflare or was refused unprocessed: connection refused, DNS failure, 429,
// or 503 with Retry-After. It is never retried after a timeout or a connection reset mid-request,
// nor on 500, 502 or 504, because the key may exist and a retry would leave an orphan key whose
// secret nobody saw. Such an error reaches the caller, who can list the keys to check. A DeleteKey
// whose answer was lost after the key was deleted is retried and then reports ErrNotFound: the key
// is gone either way.
//
// # Safety
//
// Base URLs must be https, except on loopback hosts (for tests and the fake). Redirects to another
// host are not followed, so the Authorization header never leaves for one. Response bodies are read
// up to 4 MiB (DefaultMaxResponseBytes; WithMaxResponseBytes). Text the server sends back and an
// error carries (envelope messages, the excerpt of an unexpected body) is one printable line of
// bounded length, with the call's credentials removed even when the server broke them up with
// invisible or white-space characters or the excerpt's cut fell inside one. Key objects are read
// as Cloudflare's schema defines them (no field required), but a key whose uid is not a valid key
// ID, or a new key without its 64-character secret, is an unexpected response.
//
// # Other Cloudflare API endpoints
//
// Client.Do sends a request to another endpoint under the API root the same way: the API token,
// User-Agent, redirect policy, timeouts, size cap, debug log and retries are the client's, and the
// caller's check function decides what each answer means. A request is retried as a read when
// DoParams.Idempotent is set or its method is idempotent, and otherwise as CreateKey is, only when
// it surely never reached the server. Package turnusage reads the GraphQL Analytics API through
// it.
//
// # Serving credentials to browsers
//
// Package iceserve, beside this one as net/http/httputil is beside net/http, is the credential
// endpoint built on this client: a hardened http.Handler that mints, caches and rate limits
// credentials per caller. cfturn serve-ice runs it.
//
// # Adding an operation
//
// Requests are built by gen/callsclient, generated from openapi/calls.yaml (through
// gen/callsclient/client.tmpl); this package writes no path, method or parameter encoding itself.
// The steps to add an operation (the spec, go generate, one method here, its test) are in the
// repository's CONTRIBUTING.md.
//
// # Testing
//
// Package turntest runs an in-memory fake of both APIs on loopback, in the manner of
// net/http/httptest, and hands back a Client pointed at it:
//
//	srv := turntest.NewServer()
//	defer srv.Close()
//	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "test"})
package turn
