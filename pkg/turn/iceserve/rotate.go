package iceserve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Rotator serves ICE credentials like a Handler and switches to another TURN key without a
// restart. Rotate checks the new key with one mint and only then sends new requests to a handler
// that mints with it; a request already running finishes with the key it started with, and a bad
// key (the check mint fails) is refused while the old one goes on serving.
//
// Credentials cached before a switch are served until their refresh (Config's
// RefreshFraction), unless RotateParams.DropCached drops them at once; the rate limits and the
// mint budget carry over when the store does. It is safe for concurrent use.
type Rotator struct {
	cfg Config // the configuration of every handler; KeyID and KeySecret of the first
	cur atomic.Pointer[rotation]

	mu      sync.Mutex // serialises Rotate
	retired Stats
	recent  []*Handler // handlers replaced lately, whose counters may still move
}

// rotation is one key's handler and the store it was given.
type rotation struct {
	h        *Handler
	keyID    string
	base     Store        // the key's own store, unwrapped
	memory   *MemoryStore // base when it is the in-memory store, for Stats
	previous []*Handler   // the handlers of the keys switched away from lately, newest first, for Drop
}

// RotateParams names the key an Rotator switches to.
type RotateParams struct {
	KeyID     string      // the new TURN key's uid
	KeySecret turn.Secret // its secret
	// Store, when set, is the new key's store, for stores bound to a key such as redisstore's;
	// nil keeps the current store. Either way credentials the old store holds are served until
	// their refresh unless DropCached is set. Closing a store replaced is the caller's business,
	// once the requests in flight are done.
	Store Store
	// DropCached stops serving credentials cached before the switch at once: every caller gets a
	// credential of the new key on its next request.
	DropCached bool
}

// maxRecentHandlers bounds how many replaced handlers are still read for Stats; older ones are
// folded into a fixed sum.
const maxRecentHandlers = 4

// NewRotator checks cfg as NewHandler does and returns a rotator serving with cfg's key.
// Without cfg.Store it makes the in-memory store itself, so that the store outlives a switch.
func NewRotator(cfg Config) (*Rotator, error) {
	rot := &rotation{keyID: cfg.KeyID, base: cfg.Store}
	if cfg.Store == nil {
		rot.memory = NewMemoryStore(cmp.Or(cfg.MaxIdentities, DefaultMaxIdentities), cmp.Or(cfg.MaxCallers, DefaultMaxCallers))
		rot.base, cfg.Store = rot.memory, rot.memory
	}
	h, err := NewHandler(cfg)
	if err != nil {
		return nil, err
	}
	rot.h = h
	r := &Rotator{cfg: cfg, retired: emptyStats()}
	r.cur.Store(rot)
	return r, nil
}

// ServeHTTP implements http.Handler with the handler of the current key.
func (r *Rotator) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.cur.Load().h.ServeHTTP(w, req)
}

// Handler returns the handler of the current key.
func (r *Rotator) Handler() *Handler { return r.cur.Load().h }

// KeyID returns the ID of the key new credentials are minted with.
func (r *Rotator) KeyID() string { return r.cur.Load().keyID }

// Ready is the current handler's Ready.
func (r *Rotator) Ready(ctx context.Context) error { return r.cur.Load().h.Ready(ctx) }

// CheckUpstream is the current handler's CheckUpstream.
func (r *Rotator) CheckUpstream(ctx context.Context) error {
	return r.cur.Load().h.CheckUpstream(ctx)
}

// TURNRESTHandler is Handler.TURNRESTHandler, on the handler of the key in use at each request.
func (r *Rotator) TURNRESTHandler(keys *TURNRESTKeys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.cur.Load().h.TURNRESTHandler(keys).ServeHTTP(w, req)
	})
}

// MatrixHandler is Handler.MatrixHandler, on the handler of the key in use at each request.
func (r *Rotator) MatrixHandler(v *MatrixVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.cur.Load().h.MatrixHandler(v).ServeHTTP(w, req)
	})
}

// Drop is Handler.Drop across keys: the identity's cached credential is dropped, and with revoke
// revoked with the key that minted it, whether that is the current key or one of the last
// maxRecentHandlers (4) switched away from. Cloudflare's usernames do not name their key, so the
// keys are tried newest first, the next only when one answers that it does not know the
// credential or the key (unknownToKey).
func (r *Rotator) Drop(ctx context.Context, identity string, revoke bool) error {
	cur := r.cur.Load()
	if !revoke {
		return cur.h.drop(ctx, identity, nil)
	}
	return cur.h.drop(ctx, identity, func(ctx context.Context, username string) error {
		err := cur.h.revoke(ctx, username)
		for _, h := range cur.previous {
			if !unknownToKey(err) {
				return err
			}
			err = h.revoke(ctx, username)
		}
		if unknownToKey(err) && len(cur.previous) > 0 {
			return fmt.Errorf("iceserve: rotator: revoke: none of the %d keys used lately knows the credential (it may have expired or been revoked): %w", len(cur.previous)+1, err)
		}
		return err
	})
}

// unknownToKey reports a revocation refused because the credential is not the key's (404) or the
// key is gone (401 or 404), so that an older key may be the one that minted it. The fake answers
// so; Cloudflare's answers to these cases are not documented.
func unknownToKey(err error) bool {
	return errors.Is(err, turn.ErrNotFound) || errors.Is(err, turn.ErrUnauthorized)
}

// previousKeys is the handlers Drop tries after the current one once the rotator switches from old
// to keyID: old's, then those old kept, each key once, never keyID's, at most maxRecentHandlers.
func previousKeys(old *rotation, keyID string) []*Handler {
	var out []*Handler
	for _, h := range append([]*Handler{old.h}, old.previous...) {
		if len(out) == maxRecentHandlers {
			break
		}
		if h.cfg.KeyID != keyID && !slices.ContainsFunc(out, func(o *Handler) bool { return o.cfg.KeyID == h.cfg.KeyID }) {
			out = append(out, h)
		}
	}
	return out
}

// Rotate switches to the key p names. It mints once with it through the handler's limits (the
// credential is then revoked) and switches only if that works; otherwise it returns the error,
// naming the key ID but never its secret, and the current key stays. Rotating to the key in use
// checks it again and changes nothing else.
func (r *Rotator) Rotate(ctx context.Context, p RotateParams) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	next := &rotation{keyID: p.KeyID, base: old.base, memory: old.memory, previous: previousKeys(old, p.KeyID)}
	if p.Store != nil {
		next.base, next.memory = p.Store, nil
		if m, ok := p.Store.(*MemoryStore); ok {
			next.memory = m
		}
	}
	cfg := r.cfg
	cfg.KeyID, cfg.KeySecret = p.KeyID, p.KeySecret
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	switch {
	case p.DropCached:
		// The old key's store is left behind; a kept store serves nothing cached before now.
		cfg.Store = next.base
		if next.base == old.base {
			cfg.Store = &freshSince{Store: next.base, since: now()}
		}
	case next.base != old.base:
		cfg.Store = &previousKeyStore{Store: next.base, old: old.base}
	default:
		cfg.Store = next.base
	}
	h, err := NewHandler(cfg)
	if err != nil {
		// A malformed key ID or secret: its error names the field, never the secret.
		r.log(ctx, slog.LevelWarn, "iceserve: rotator: new key refused, still serving with the old one",
			"key_id", p.KeyID, "old_key_id", old.keyID, "error", err.Error())
		return err
	}
	if err := h.CheckUpstream(ctx); err != nil {
		r.log(ctx, slog.LevelWarn, "iceserve: rotator: new key refused, still serving with the old one",
			"key_id", p.KeyID, "old_key_id", old.keyID, "error", err.Error())
		return fmt.Errorf("iceserve: rotator: key %s refused, still serving with key %s: the check mint failed: %w", p.KeyID, old.keyID, err)
	}
	next.h = h
	r.cur.Store(next)
	r.recent = append(r.recent, old.h)
	if len(r.recent) > maxRecentHandlers {
		addStats(&r.retired, r.recent[0].Stats())
		r.recent = r.recent[1:]
	}
	r.log(ctx, slog.LevelInfo, "iceserve: rotator: switched key", "key_id", p.KeyID, "old_key_id", old.keyID, "drop_cached", p.DropCached)
	return nil
}

func (r *Rotator) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if r.cfg.Logger != nil {
		r.cfg.Logger.Log(ctx, level, msg, args...)
	}
}

// Stats returns the counters of every handler the rotator has used, summed: counters never go
// back at a switch. Identities and Callers are the current store's (in-memory stores only).
func (r *Rotator) Stats() Stats {
	r.mu.Lock()
	st := emptyStats()
	addStats(&st, r.retired)
	for _, h := range r.recent {
		addStats(&st, h.Stats())
	}
	cur := r.cur.Load()
	r.mu.Unlock()
	addStats(&st, cur.h.Stats())
	st.Identities, st.Callers = 0, 0
	if cur.memory != nil {
		st.Identities, st.Callers = cur.memory.Credentials(), cur.memory.Callers()
	}
	return st
}

func emptyStats() Stats {
	return Stats{Refused: map[string]int64{}, UpstreamErrors: map[string]int64{}}
}

func addStats(sum *Stats, st Stats) {
	sum.UpstreamCalls += st.UpstreamCalls
	sum.CacheHits += st.CacheHits
	sum.StaleServes += st.StaleServes
	sum.InFlight += st.InFlight
	sum.CoturnFallbacks += st.CoturnFallbacks
	sum.STUNOnly += st.STUNOnly
	for k, v := range st.Refused {
		sum.Refused[k] += v
	}
	for k, v := range st.UpstreamErrors {
		sum.UpstreamErrors[k] += v
	}
}

// previousKeyStore is the new key's store that also answers, until they need refreshing, the
// credentials the previous key's store cached. Everything else goes to the new key's store.
type previousKeyStore struct {
	Store
	old Store
}

func (s *previousKeyStore) Credential(ctx context.Context, key string) (*Credential, error) {
	c, err := s.Store.Credential(ctx, key)
	if c != nil || err != nil {
		return c, err
	}
	// The old store failing is a miss: the caller gets a credential of the new key.
	if c, err := s.old.Credential(ctx, key); err == nil {
		return c, nil
	}
	return nil, nil
}

func (s *previousKeyStore) DropCredential(ctx context.Context, key string) (*Credential, error) {
	c, err := s.Store.DropCredential(ctx, key)
	oc, oerr := s.old.DropCredential(ctx, key)
	if c == nil {
		c = oc
	}
	return c, errors.Join(err, oerr)
}

// freshSince is a store that serves no credential sent before since: a switch that drops the
// credentials cached with the old key but keeps the store and its limits.
type freshSince struct {
	Store
	since time.Time
}

func (s *freshSince) Credential(ctx context.Context, key string) (*Credential, error) {
	c, err := s.Store.Credential(ctx, key)
	if c != nil && c.Sent.Before(s.since) {
		return nil, err
	}
	return c, err
}
