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
// The answers of generate-ice-servers carry the URL set Cloudflare documents today, or the older
// one with port-53 URLs (WithLegacyICEURLs). Package turnrelay runs pion's TURN server beside the
// fake and attaches to it through a small exported seam, so that the answers point at it and a
// WebRTC peer that takes them as is gets working TURN: SetICEURLs sets the URLs the fake answers,
// LookupCredential hands the relay a credential the fake minted and says whether it is live
// (revoked, expired, evicted or its key deleted: dead), and ReportRelayed takes the bytes the relay
// carried for it, by direction, which RelayedBytes, RelayedBytesByIdentifier and Relayed read
// back. The fake itself links no TURN code: a test of the client never links a TURN server.
//
// Memory is bounded: at most 1,000 keys per account (WithMaxKeys) for at most 1,000 accounts, about
// 440 bytes per key with an 18-character name (BenchmarkKeyMemory), and the 10,000 newest ICE
// credentials (WithMaxCredentials), expired ones dropped first. A credential dropped is dead: a
// relay refuses it and stops its allocations, and revoking it answers 404, as for one never minted.
//
// The fake also answers Cloudflare's GraphQL Analytics API at /client/v4/graphql for the TURN usage
// dataset (callsTurnUsageAdaptiveGroups and its settings node): queries are validated against
// graphql/analytics.graphql and executed on per-minute byte counters of what the relay really
// carried, per key, username and customIdentifier (RecordUsage adds usage without traffic). Bad
// fields, filters, limits and over-long ranges are answered with GraphQL errors shaped like
// Cloudflare's; the counters keep at most 200,000 series and DefaultAnalyticsNotOlderThan of history.
//
// InjectFault makes the next requests fail in chosen ways (a status, Retry-After, an HTML page, a
// truncated or oversize body, a delay, a dropped connection, a redirect) to test a client's error
// handling and retries; Fault.Operation takes the Op constants. Requests and Keys expose what the
// fake saw and holds.
//
// cfturn serve-fake runs the same fake as a standalone server, with a relay attached.
package turntest
