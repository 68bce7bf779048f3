// Package iceserve serves fresh ICE credentials to browsers from one Cloudflare TURN key: the
// credential endpoint that sits beside the turn client, as net/http/httputil sits beside
// net/http, and uses it only through its exported API.
//
// Handler is an http.Handler that holds a TURN key and answers every GET or POST with fresh
// credentials for the caller, cached per caller identity, shared between concurrent requests,
// rate limited and bounded in memory. cfturn serve-ice runs it as a server.
//
// It faces the open internet, so choose the caller identity with care: a header your
// authenticating proxy sets and overwrites (Config.IdentityHeader) or a function of a
// verified session (Identity), never a value the browser picks, which would let a caller take a
// fresh rate limit per request. The default, the remote address, is the load balancer's when
// there is one. Each limit defends one thing: the per-identity bucket (30/min, burst 10) a single
// caller; the handler-wide mint budget (50/s, burst 100) rotated identities; MaxInFlight (16) a
// slow upstream; MaxIdentities and MaxCallers memory. The handler never retries upstream itself,
// remembers a failing upstream for all callers, and serves a cached credential whose refresh
// failed while it has MinRemaining left. Its state lives behind a Store: MemoryStore, in this
// process, by default, or redisstore.Store, shared by several replicas through Redis.
//
// Server wraps a Handler (or any handler) with the hardening a server on the open internet needs:
// a Host guard against DNS rebinding, a cap on open connections, timeouts, and a graceful shutdown
// that Close cuts short. cfturn serve-ice is a thin command over both.
package iceserve
