package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// leaseFailed is the value a minter leaves in its lease when its mint failed: replicas waiting
// for it answer "retry shortly" for failMark instead of minting in turn, which would multiply
// upstream calls by the number of replicas while the upstream fails.
const (
	leaseFailed = "failed"
	failMark    = time.Second
)

// Flight implements iceserve.Store. Within a replica one mint per identity runs at a time; across
// replicas a lease in Redis (SET NX) elects one minter and the others wait for its credential to
// appear, until ctx's deadline (the handler's RequestTimeout) whatever its cancellation: the wait
// is shared by this replica's callers for key. The minter renews its lease while it mints, so a
// slow mint keeps it; a minter that crashes stops renewing, and its lease expires after LeaseTTL.
// A mint that fails leaves a mark for one second, during which the identity's waiters get
// iceserve.ErrStoreBusy.
func (s *Store) Flight(ctx context.Context, key string, mint func() (*iceserve.Credential, error)) (*iceserve.Credential, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(iceserve.DefaultRequestTimeout)
	}
	return s.fallback.Flight(ctx, key, func() (*iceserve.Credential, error) { return s.leased(deadline, key, mint) })
}

func (s *Store) leased(deadline time.Time, key string, mint func() (*iceserve.Credential, error)) (*iceserve.Credential, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	lk, rk := s.leaseKey(key), s.credKey(key)
	token := rand.Text()
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		if !s.tryRedis() {
			return mint()
		}
		if s.isPending(key) && !s.replayDrop(ctx, key) {
			return mint()
		}
		// One round trip: take the lease if free, and read the lease and the credential.
		v, err := s.do(ctx, func(ctx context.Context) (any, error) {
			return leaseScript.Run(ctx, s.rdb, []string{lk, rk}, token, s.opts.LeaseTTL.Milliseconds(), s.opts.MaxValueBytes).Slice()
		})
		if err != nil {
			// Redis failed mid-flight: mint here rather than fail the browser.
			return mint()
		}
		r := v.([]any)
		if len(r) != 5 {
			return mint()
		}
		took, _ := r[0].(int64)
		holder, _ := r[1].(string)
		cred, ok := parseStored(r[2:])
		if !ok {
			return mint()
		}
		// Whoever holds the lease, a credential that is fresh is the answer: another replica
		// may have finished minting between this replica's miss and now.
		if c := s.fresh(key, rk, cred); c != nil {
			if took == 1 {
				s.release(lk, token)
			}
			return c, nil
		}
		switch {
		case took == 1:
			return s.mintLeased(key, lk, token, mint)
		case holder == leaseFailed:
			return nil, fmt.Errorf("redisstore: %w", iceserve.ErrStoreBusy)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redisstore: waiting for another replica's mint: %w", iceserve.ErrStoreBusy)
		case <-time.After(pause):
		}
	}
}

// fresh returns the credential r holds, read from rk, if it is still fresh.
func (s *Store) fresh(key, rk string, r stored) *iceserve.Credential {
	now := s.opts.Now()
	c := s.open(rk, r, now)
	if c == nil || !now.Before(c.FreshUntil) {
		return nil
	}
	s.remember(key, c, now)
	return c
}

// mintLeased runs mint while renewing the lease, then releases it, or marks it failed.
func (s *Store) mintLeased(key, lk, token string, mint func() (*iceserve.Credential, error)) (*iceserve.Credential, error) {
	done := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(s.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.do(context.Background(), func(ctx context.Context) (any, error) {
					return renewScript.Run(ctx, s.rdb, []string{lk}, token, s.opts.LeaseTTL.Milliseconds()).Result()
				})
			}
		}
	}()
	c, err := mint() // mint stores the credential (SetCredential) before the lease goes
	close(done)
	<-renewed
	if err != nil {
		s.do(context.Background(), func(ctx context.Context) (any, error) {
			return failScript.Run(ctx, s.rdb, []string{lk}, token, failMark.Milliseconds()).Result()
		})
		return nil, err
	}
	s.release(lk, token)
	return c, nil
}

func (s *Store) release(lk, token string) {
	s.do(context.Background(), func(ctx context.Context) (any, error) {
		return releaseScript.Run(ctx, s.rdb, []string{lk}, token).Result()
	})
}
