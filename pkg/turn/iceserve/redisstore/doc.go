// Package redisstore lets several iceserve.Handler replicas share one view through Redis: the
// cached credential of each identity, one mint per identity per refresh window across all
// replicas, the per-identity rate limits and the handler-wide mint budget.
//
//	rdb, err := redisstore.NewClient(os.Getenv("CFTURN_REDIS_URL")) // redis:// or rediss://
//	store, err := redisstore.New(rdb, redisstore.Options{KeyID: keyID, KeySecret: secret})
//	defer store.Close()
//	err = store.Check(ctx) // fail fast on a wrong password or a missing permission
//	h, err := iceserve.NewHandler(iceserve.Config{..., Store: store})
//
// # What Redis holds
//
// Per identity, under a name that is an HMAC of the identity's digest (so guessed identities
// cannot be checked against Redis): the credential, sealed with AES-256-GCM under a key derived
// by HKDF-SHA256 from the TURN key's secret, expiring with the credential; a GCRA limiter value,
// expiring when the caller's bucket is full again; and, while a mint runs, a lease (SET NX,
// LeaseTTL, renewed by the minter while it mints) or for a second after a failed mint the mark
// "failed". One more GCRA value holds the mint budget. Read access to Redis alone yields no
// usable TURN credential.
//
// Every operation is a small script, so the Redis user needs +@scripting, the commands the
// scripts run on keys under Prefix, and the drop channel (Check tries them all). Time is Redis's:
// the limiter reads TIME, and a replica counts a credential's freshness and expiry from its key's
// remaining life, so a replica whose clock is off cannot make the others serve a credential past
// its real expiry (differences under 5s, within what a loaded call can take, are left alone).
//
// # What Redis can do to a replica
//
// Nothing Redis sends crashes a replica: a panic of the client on a reply is a Redis failure.
// A value under a credential key that no replica wrote (another type, no expiry, over
// MaxValueBytes) is never sent to a replica; it counts as no credential, logged at most once per
// RetryAfter. One under a limiter or lease key is replaced. A client made by NewClient also
// bounds every reply it reads (see NewClient).
//
// # Cost per request
//
// A warm hit (the identity's credential is in this replica's local layer, for LocalTTL) spends
// rate-limit tokens the replica took ahead from Redis: a quarter of the caller's burst at once
// (1 to 64), given back when unspent after ReserveIdle. With the default burst of 10 that is one
// Redis call every second warm hit; with a burst of 256 or more, one every 64. Tokens are only
// ever taken from Redis, so limits hold exactly across replicas; a reserve can make another
// replica refuse a caller that many requests early. A cold request costs the limiter script and
// one read script; the replica that mints adds one lease script (lease, credential, holder), the
// mint-budget script (skipped while the budget is known to be spent), one SET with expiry and the
// lease release; replicas waiting on another's mint repeat the lease script from 10ms to 200ms apart.
//
// # When Redis fails
//
// Each operation is bounded by Options.Timeout. A failure switches the replica to its local
// state (logged once; Healthy reports false, and runs a read script itself when nothing else has
// tried Redis for RetryAfter) and Redis is tried again after RetryAfter; DropCredential tries it
// even then, and a drop Redis missed is sent again as soon as it answers. On local
// state each replica caches, mints and limits on its own: a caller spread over N replicas can get
// up to N credentials and N times its rate limit, and the mint budget becomes N times its value,
// as without Redis. Browsers are never failed for it. When Redis answers again the replicas use
// it again; what they minted meanwhile is not copied back.
//
// go-redis itself logs each failed dial through its process-wide logger, unsampled: while Redis is
// down that is a line per attempt. This package logs each change of state once through
// Options.Logger; to keep go-redis quiet, call redis.SetLogger with a logger that drops its lines,
// as cfturn serve-ice does.
package redisstore
