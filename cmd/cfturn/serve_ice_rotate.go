package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// keyReload is how serve-ice learns of a new TURN key without a restart: SIGHUP, or a change of
// --key-id-file or --key-secret-file (a Kubernetes secret mounted as a volume is updated in
// place), polled every --key-poll.
type keyReload struct {
	idFile     string
	poll       time.Duration
	dropCached bool
}

func (k *keyReload) register(f *pflag.FlagSet) {
	f.StringVar(&k.idFile, "key-id-file", "", "file holding the TURN key's ID, instead of --key-id; re-read with --key-secret-file on SIGHUP and when either changes")
	f.DurationVar(&k.poll, "key-poll", 10*time.Second, "how often --key-id-file and --key-secret-file are checked for a new key (0: only on SIGHUP)")
	f.BoolVar(&k.dropCached, "drop-cached-on-rotate", false, "on a key switch, stop serving credentials cached with the old key at once (default: until their refresh)")
}

// maxKeyIDFileBytes bounds what --key-id-file reads: a key ID is 32 characters.
const maxKeyIDFileBytes = 1 << 10

// resolve fills flags.keyID from --key-id-file when it is given.
func (k *keyReload) resolve(flags *iceFlags) error {
	switch {
	case k.poll < 0:
		return usagef("--key-poll %v: must not be negative (0 checks the files only on SIGHUP)", k.poll)
	case k.idFile == "":
		return nil
	case flags.keyID != "":
		return usagef("--key-id and --key-id-file both given: pass one (--key-id-file to switch keys without a restart)")
	}
	id, err := readSmallFile(k.idFile, maxKeyIDFileBytes)
	if err != nil {
		return usagef("--key-id-file: %w", err)
	}
	flags.keyID = id
	return nil
}

// watched reports whether there is a file to reload the key from.
func (k *keyReload) watched(flags *iceFlags) bool { return k.idFile != "" || flags.secretFile != "" }

// readSmallFile reads path, at most max bytes, without surrounding white space.
func readSmallFile(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(b)) > max {
		return "", fmt.Errorf("%s holds more than %d bytes: is it the right file?", printable(path), max)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", printable(path))
	}
	return s, nil
}

// keyWatcher switches a rotator to the key its files name.
type keyWatcher struct {
	k        *keyReload
	flags    *iceFlags
	rot      *iceserve.Rotator
	logger   *slog.Logger
	newStore func(keyID string, secret turn.Secret) (iceserve.Store, func(), error) // nil: keep the store
	switched func(iceserve.Store)                                                   // told of a new store in use
	guard    *turnusage.Guard                                                       // with --egress-budget: follows the new key
	getenv   func(string) string

	current, refused [sha256.Size]byte // fingerprints of the key in use and of the last refused
}

// fingerprint identifies a key ID and secret without keeping the secret.
func fingerprint(keyID string, secret turn.Secret) [sha256.Size]byte {
	return sha256.Sum256([]byte(keyID + "\x00" + secret.Reveal()))
}

// read returns the key the files (or the flags and environment) name now.
func (w *keyWatcher) read() (string, turn.Secret, error) {
	keyID := w.flags.keyID
	if w.k.idFile != "" {
		id, err := readSmallFile(w.k.idFile, maxKeyIDFileBytes)
		if err != nil {
			return "", turn.Secret{}, fmt.Errorf("--key-id-file: %w", err)
		}
		keyID = id
	}
	if w.flags.secretFile == "" {
		s := strings.TrimSpace(w.getenv("CFTURN_KEY_SECRET"))
		return keyID, turn.NewSecret(s), nil
	}
	s, err := readSmallFile(w.flags.secretFile, maxSecretFileBytes)
	if err != nil {
		return "", turn.Secret{}, fmt.Errorf("--key-secret-file: %w", err)
	}
	return keyID, turn.NewSecret(s), nil
}

// check switches to the key the files name if it is new. forced (SIGHUP) tries again a key that
// was refused before; a poll does not, so a bad key costs one check mint, not one per poll.
func (w *keyWatcher) check(ctx context.Context, forced bool) {
	keyID, secret, err := w.read()
	if err != nil {
		// Errors name the file, never its content.
		w.logger.Warn("cfturn serve-ice: cannot read the key, still serving with the current one", "error", err.Error())
		return
	}
	fp := fingerprint(keyID, secret)
	if fp == w.current {
		if forced {
			w.logger.Info("cfturn serve-ice: reload: the key is unchanged", "key_id", keyID)
		}
		return
	}
	if fp == w.refused && !forced {
		return
	}
	w.logger.Info("cfturn serve-ice: new key found, checking it", "key_id", keyID, "old_key_id", w.rot.KeyID())
	p := iceserve.RotateParams{KeyID: keyID, KeySecret: secret, DropCached: w.k.dropCached}
	release := func() {}
	if w.newStore != nil {
		if p.Store, release, err = w.newStore(keyID, secret); err != nil {
			w.logger.Warn("cfturn serve-ice: new key refused, still serving with the old one", "key_id", keyID, "error", err.Error())
			w.refused = fp
			return
		}
	}
	// The rotator logs the switch or the refusal.
	if err := w.rot.Rotate(ctx, p); err != nil {
		release()
		w.refused = fp
		return
	}
	if p.Store != nil && w.switched != nil {
		w.switched(p.Store)
	}
	if w.guard != nil {
		// The month's egress is every key's it used: a rotation must not reset the budget. One
		// poll now counts the new key's egress at once (a failure is logged by the guard).
		w.guard.Follow(keyID)
		pctx, cancel := context.WithTimeout(ctx, guardPollTimeout)
		w.guard.Poll(pctx)
		cancel()
	}
	w.current, w.refused = fp, [sha256.Size]byte{}
}

// watch checks for a new key on SIGHUP and every poll until ctx ends.
func (w *keyWatcher) watch(ctx context.Context, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if w.k.poll > 0 && w.k.watched(w.flags) {
		t := time.NewTicker(w.k.poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if !w.k.watched(w.flags) {
				w.logger.Warn("cfturn serve-ice: SIGHUP: nothing to reload, the key comes from --key-id and CFTURN_KEY_SECRET; use --key-id-file and --key-secret-file to switch keys without a restart")
				continue
			}
			w.check(ctx, true)
		case <-tick:
			w.check(ctx, false)
		}
	}
}

// startKeyWatch runs the watcher until ctx ends or the returned function, which waits for it to
// end, is called.
func (a *app) startKeyWatch(ctx context.Context, k *keyReload, flags *iceFlags, rot *iceserve.Rotator, secret turn.Secret,
	stores *redisStores, newStore func(string, turn.Secret) (iceserve.Store, func(), error), guard *turnusage.Guard, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	w := &keyWatcher{k: k, flags: flags, rot: rot, logger: logger, newStore: newStore, guard: guard, getenv: a.getenv}
	if stores != nil {
		w.switched = func(s iceserve.Store) { stores.switched(s.(*redisstore.Store)) }
	}
	w.current = fingerprint(rot.KeyID(), secret)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		w.watch(ctx, hup)
	}()
	return func() {
		cancel()
		<-done
	}
}

// redisStores is serve-ice's Redis store of the key in use, switched with the key, for /readyz
// and /metrics: counters are summed over every store used, so they never go back.
type redisStores struct {
	mu      sync.Mutex
	cur     *redisstore.Store
	used    []*redisstore.Store
	closers []func()
}

func newRedisStores(first *redisstore.Store) *redisStores { return &redisStores{cur: first} }

// Healthy is the current store's.
func (r *redisStores) Healthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.Healthy()
}

// Stats sums the counters of every store; the rest is the current store's.
func (r *redisStores) Stats() redisstore.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.cur.Stats()
	for _, s := range r.used {
		o := s.Stats()
		st.RedisCalls += o.RedisCalls
		st.RedisFailures += o.RedisFailures
	}
	return st
}

// switched makes s the current store; the one before still serves the old key's cached
// credentials until their refresh, so it stays open.
func (r *redisStores) switched(s *redisstore.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.used = append(r.used, r.cur)
	r.cur = s
}

// factory returns a function that makes the Redis store of another key, each on a client of its
// own to the Redis serve-ice started with, and a function that closes every store it made. A store
// that Rotate refuses is closed at once by the watcher (release).
func (r *redisStores) factory(a *app, flagURL, caFile string, logger *slog.Logger) (func(string, turn.Secret) (iceserve.Store, func(), error), func()) {
	newStore := func(keyID string, secret turn.Secret) (iceserve.Store, func(), error) {
		raw := flagURL
		if raw == "" {
			raw = a.getenv(redisURLEnv)
		}
		var configure []func(*redis.Options) error
		if caFile != "" {
			configure = append(configure, redisstore.TrustCA(caFile))
		}
		rdb, err := redisstore.NewClient(raw, configure...)
		if err != nil {
			return nil, nil, err
		}
		store, err := redisstore.New(rdb, redisstore.Options{KeyID: keyID, KeySecret: secret, Logger: logger})
		if err != nil {
			rdb.Close()
			return nil, nil, err
		}
		var once sync.Once
		release := func() { once.Do(func() { store.Close(); rdb.Close() }) }
		r.mu.Lock()
		r.closers = append(r.closers, release)
		r.mu.Unlock()
		return store, release, nil
	}
	return newStore, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.closers {
			c()
		}
	}
}
