// Package turntest is an offline, in-memory fake of the Cloudflare TURN APIs for tests, in the
// manner of net/http/httptest.
//
// NewServer starts it on a loopback port and hands back its URLs and a ready *turn.Client. The fake
// is stateful: keys created are listed, fetched, renamed and deleted; each well-formed account ID
// has keys of its own; ICE credentials are minted only with a live key's ID and secret, and can be
// revoked. Every answer follows openapi/calls.yaml, and the tests check that with a spec validator.
//
// Key management is served under /client/v4 with the Cloudflare envelope; ICE credentials under /v1
// with plain statuses, as the real APIs do, so the official SDKs and curl work against it when given
// its base URL. Errors carry the fake's own codes: 10001 no token (401), 10000 wrong token (403),
// 7003 malformed identifier (400), 10002 malformed body (400), 10006 unknown key (404), 10013 a
// limit reached (400).
//
// InjectFault makes the next requests fail in chosen ways (a status, Retry-After, an HTML page, a
// truncated or oversize body, a delay, a dropped connection, a redirect) to test a client's error
// handling and retries. Requests and Keys expose what the fake saw and holds.
//
// cfturn serve-fake runs the same fake as a standalone server.
package turntest
