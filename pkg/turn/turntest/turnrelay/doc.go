// Package turnrelay runs pion's TURN server beside a turntest fake, so that tests get real TURN
// from the fake's ICE answers: a WebRTC peer given the answer as is connects through it on
// loopback, and the test sees what went through it.
//
//	srv := turntest.NewServer()
//	defer srv.Close()
//	relay, err := turnrelay.Attach(srv)
//	...
//	defer relay.Close()
//
// Attach starts the relay (UDP and TCP on one free loopback port; TLS with WithTLS) and points
// the fake's generate-ice-servers answers at it. The relay attaches through a narrow seam, the
// Fake interface, which *turntest.Fake satisfies: it looks up a credential the fake minted by its
// username (its password, and whether it is live: not revoked, not expired, not evicted from the
// fake's table, its key not deleted), reports the bytes it relays for it (egress, sent to the
// client, and ingress, received from it), and sets the URLs the fake answers. It never sees the
// fake's state or its lock. The fake links no TURN code, so a test of the client stays free of
// pion; only tests that want a data plane link this package.
//
// The relay authenticates exactly the live credentials of the fake, and stops the allocations of
// a credential once it dies. It is bounded like a server on a shared machine (allocations in all
// and per credential, stream connections, peers and channel bindings per allocation), relays UDP
// only, refuses internal peers off loopback (WithAddr), and logs its refusals, sampled
// (WithLogger). Relay's doc gives the numbers.
//
// cfturn serve-fake attaches one to the fake it serves.
package turnrelay
