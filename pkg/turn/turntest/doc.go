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
// NewServer also runs a TURN relay on loopback (pion's TURN server, UDP and TCP, TLS with
// WithRelayTLS), and generate-ice-servers then answers stun:/turn: URLs that point at it, so a
// WebRTC peer that takes the answer as is gets working TURN. The relay authenticates exactly the
// credentials the fake minted: a live credential of a live key allocates; a revoked or expired one,
// or one whose key was deleted, is refused, and its allocations stop. Off loopback (WithRelayAddr)
// it refuses peers on internal addresses, so it opens no way into the host. RelayedBytes and RelayedBytesByIdentifier count the
// bytes it carried. With WithoutRelay (and with New, which serves HTTP only) the answer is the URL
// set Cloudflare documents today, or the older one with port-53 URLs (WithLegacyICEURLs).
//
// Memory is bounded: at most 1,000 keys per account (WithMaxKeys) for at most 1,000 accounts, about
// 440 bytes per key with an 18-character name (BenchmarkKeyMemory), and the 10,000 newest ICE
// credentials, expired ones dropped first. A credential dropped is dead: the relay refuses it and
// stops its allocations, and revoking it answers 404, as for one never minted.
//
// InjectFault makes the next requests fail in chosen ways (a status, Retry-After, an HTML page, a
// truncated or oversize body, a delay, a dropped connection, a redirect) to test a client's error
// handling and retries; Fault.Operation takes the Op constants. Requests and Keys expose what the
// fake saw and holds.
//
// cfturn serve-fake runs the same fake as a standalone server.
package turntest
