package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Three replicas share one Redis; 300 identities ask for credentials three rounds over, and in
// every round each identity asks all three replicas at the same moment. Every identity is minted
// once and gets one credential, whichever replica answers.
func TestReplicasMintOncePerIdentity(t *testing.T) {
	c := newCluster(t)
	cfg := iceserve.Config{RatePerMinute: -1, MintsPerSecond: 10000, MintBurst: 1000, MaxInFlight: 512}
	replicas := []*replica{c.replica(t, cfg, redisstore.Options{}), c.replica(t, cfg, redisstore.Options{}), c.replica(t, cfg, redisstore.Options{})}
	// A slow upstream makes the replicas' flights for one identity overlap.
	c.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 50 * time.Millisecond, Count: 300})

	bodies := make(map[string]map[string]bool)
	var mu sync.Mutex
	// At most 32 identities at a time (96 requests), so that Redis answers within its timeout
	// on a loaded machine: a timeout would put a replica on local state, where it mints alone.
	sem := make(chan struct{}, 32)
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range 300 {
			user := fmt.Sprintf("user-%d", i)
			sem <- struct{}{}
			var three sync.WaitGroup
			three.Add(len(replicas))
			go func() { three.Wait(); <-sem }()
			for _, r := range replicas {
				wg.Go(func() {
					defer three.Done()
					code, body := r.get(t, user)
					if code != http.StatusOK {
						t.Errorf("round %d %s: %d %s", round, user, code, body)
						return
					}
					mu.Lock()
					if bodies[user] == nil {
						bodies[user] = map[string]bool{}
					}
					bodies[user][string(body)] = true
					mu.Unlock()
				})
			}
		}
		wg.Wait()
	}
	var failures int64
	for _, r := range replicas {
		failures += r.store.Stats().RedisFailures
	}
	if n := c.mints(); n != 300 {
		t.Errorf("%d upstream mints for 300 identities on 3 replicas, want 300 (Redis calls failed or timed out: %d)", n, failures)
	}
	for user, b := range bodies {
		if len(b) != 1 {
			t.Errorf("%s got %d different credentials, want 1", user, len(b))
		}
	}
}

// The per-identity limit and the handler-wide mint budget hold across replicas: a caller who
// spreads requests over three replicas gets one burst, not three; rotating identities over three
// replicas gets one mint budget.
func TestLimitsHoldAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	cfg := iceserve.Config{RatePerMinute: 0.1, Burst: 5, MintsPerSecond: 0.01, MintBurst: 20}
	replicas := []*replica{c.replica(t, cfg, redisstore.Options{}), c.replica(t, cfg, redisstore.Options{}), c.replica(t, cfg, redisstore.Options{})}

	ok := 0
	for i := range 30 {
		if code, _ := replicas[i%3].get(t, "mallory"); code == http.StatusOK {
			ok++
		}
	}
	if ok != 5 {
		t.Errorf("one identity over 3 replicas: %d answers, want the burst of 5", ok)
	}

	ok = 0
	for i := range 90 {
		if code, _ := replicas[i%3].get(t, fmt.Sprintf("rotating-%d", i)); code == http.StatusOK {
			ok++
		}
	}
	// mallory's one mint came out of the same budget of 20.
	if ok != 19 || c.mints() != 20 {
		t.Errorf("rotating identities over 3 replicas: %d answers, %d mints; want 19 and the budget of 20", ok, c.mints())
	}
}

// A replica takes tokens ahead for a warm caller, so its hits skip Redis; they count against the
// shared limit at once, and what the caller does not spend there goes back after ReserveIdle.
func TestReservedTokensCountAndGoBack(t *testing.T) {
	c := newCluster(t)
	cfg := iceserve.Config{RatePerMinute: 0.1, Burst: 8}
	a := c.replica(t, cfg, redisstore.Options{ReserveIdle: 50 * time.Millisecond})
	b := c.replica(t, cfg, redisstore.Options{ReserveIdle: time.Hour})
	for range 2 { // the first mints; the second, warm, takes 2 tokens (a quarter of 8)
		if code, _ := a.get(t, "erin"); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	calls := a.store.Stats().RedisCalls
	if code, _ := a.get(t, "erin"); code != http.StatusOK {
		t.Fatal(code)
	}
	if n := a.store.Stats().RedisCalls - calls; n != 0 {
		t.Errorf("a warm hit on a reserved token made %d Redis calls, want 0", n)
	}
	// 3 spent on a, none left in reserve: b gets the other 5, however they are split.
	ok := 0
	for range 10 {
		if code, _ := b.get(t, "erin"); code == http.StatusOK {
			ok++
		}
	}
	if ok != 5 {
		t.Errorf("b answered %d, want the 5 left of the burst of 8", ok)
	}

	// On a fresh caller, a takes 1 token (cold) then 2 (warm) and spends 1 of them: Redis
	// counts 3 (a TAT 3 intervals of 600s ahead) until a, idle, gives the unspent one back.
	for range 2 {
		if code, _ := a.get(t, "frank"); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	rateKey := redisstore.DefaultPrefix + c.key.ID + ":rate:" + identityKey(t, a, "frank")
	ahead := func() time.Duration { d, _ := a.rdb.PTTL(context.Background(), rateKey).Result(); return d }
	eventually(t, "a gives back frank's unspent token", func() bool {
		d := ahead()
		return d > 1100*time.Second && d <= 1200*time.Second
	})
}

// What Redis holds does not give away a credential: the username and password appear nowhere in
// it, and the sealed value does not open with another TURN key's secret.
func TestCredentialsSealedAtRest(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{}, redisstore.Options{})
	code, body := r.get(t, "alice")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var ice turn.ICEServers
	if err := ice.UnmarshalJSON(body); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, s := range ice.Servers {
		if s.Username != "" {
			secrets = append(secrets, s.Username, s.Credential.Reveal())
		}
	}
	if len(secrets) == 0 {
		t.Fatalf("no TURN credential in %s", body)
	}

	ctx := context.Background()
	keys, err := r.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var creds []string
	for _, k := range keys {
		for _, s := range append(secrets, c.key.Secret.Reveal(), "alice") {
			if strings.Contains(k, s) {
				t.Errorf("Redis key %q holds a secret or the identity", k)
			}
		}
		if typ, _ := r.rdb.Type(ctx, k).Result(); typ != "string" {
			continue
		}
		v, _ := r.rdb.Get(ctx, k).Bytes()
		for _, s := range secrets {
			if bytes.Contains(v, []byte(s)) {
				t.Errorf("Redis value of %q holds a credential in the clear", k)
			}
		}
		if strings.Contains(k, ":cred:") {
			creds = append(creds, k)
			ttl, _ := r.rdb.PTTL(ctx, k).Result()
			if ttl <= 0 || ttl > 24*time.Hour {
				t.Errorf("credential %q expires in %v, want with the credential (24h)", k, ttl)
			}
		}
	}
	if len(creds) != 1 {
		t.Fatalf("%d sealed credentials in Redis (%q), want 1", len(creds), keys)
	}

	// Another TURN key's store, reading the same Redis key, finds nothing it can open.
	other, err := redisstore.New(r.rdb, redisstore.Options{KeyID: c.key.ID, KeySecret: turn.NewSecret(strings.Repeat("x", 64))})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if creds[0] != redisstore.DefaultPrefix+c.key.ID+":cred:"+identityKey(t, r, "alice") {
		t.Errorf("credential key %q", creds[0])
	}
	// The same identity has another name under another secret, and the value does not open.
	if name := redisstore.RedisName(other, "alice"); strings.HasSuffix(creds[0], name) {
		t.Error("key names do not depend on the secret: identities could be guessed from them")
	}
	sum := sha256.Sum256([]byte("alice"))
	if got, err := other.Credential(ctx, string(sum[:16])); got != nil || err != nil {
		t.Errorf("a store with another secret found the credential: %v %v", got, err)
	}
}

// Dropping an identity on one replica stops every replica serving it, and it is minted anew.
func TestDropReachesEveryReplica(t *testing.T) {
	c := newCluster(t)
	a := c.replica(t, iceserve.Config{}, redisstore.Options{LocalTTL: time.Hour})
	b := c.replica(t, iceserve.Config{}, redisstore.Options{LocalTTL: time.Hour})
	_, first := a.get(t, "bob")
	if _, fromB := b.get(t, "bob"); !bytes.Equal(first, fromB) {
		t.Fatal("replica b did not share a's credential")
	}
	if err := a.handler.Drop(context.Background(), "bob", true); err != nil {
		t.Fatal(err)
	}
	// b learns of the drop through Redis's channel; its local layer would otherwise keep it an hour.
	eventually(t, "replica b stops serving the dropped credential", func() bool {
		_, body := b.get(t, "bob")
		return !bytes.Equal(body, first)
	})
	if n := c.mints(); n != 2 {
		t.Errorf("%d mints, want 2 (the first and one after the drop)", n)
	}
	if !c.fake.Revoked(username(t, first)) {
		t.Errorf("the dropped credential was not revoked upstream")
	}
}

// A replica that dies holding a mint lease holds that identity's minting off only until the
// lease expires: a caller waiting on it is then minted for at once.
func TestCrashedMinterLeaseExpires(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{}, redisstore.Options{LeaseTTL: 500 * time.Millisecond})
	// Another replica took the lease for "carol" and crashed: nobody renews it.
	lease := redisstore.DefaultPrefix + c.key.ID + ":lease:" + identityKey(t, r, "carol")
	if err := r.rdb.Set(context.Background(), lease, "crashed", 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code, body := r.get(t, "carol"); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("answered after %v, before the dead replica's lease expired", took)
	}
	if n := c.mints(); n != 1 {
		t.Errorf("%d mints, want 1", n)
	}
}

// A mint that fails leaves a mark: replicas waiting for it answer 503 instead of minting in turn,
// and the identity is minted again once the mark is gone.
func TestFailedMintIsNotRepeatedByWaiters(t *testing.T) {
	c := newCluster(t)
	cfg := iceserve.Config{RatePerMinute: -1}
	a, b := c.replica(t, cfg, redisstore.Options{}), c.replica(t, cfg, redisstore.Options{})
	c.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Status: 500, Delay: 300 * time.Millisecond})
	codes := make(chan int, 2)
	go func() { code, _ := a.get(t, "dan"); codes <- code }()
	eventually(t, "a holds dan's lease", func() bool {
		n, _ := a.rdb.Exists(context.Background(), redisstore.DefaultPrefix+c.key.ID+":lease:"+identityKey(t, a, "dan")).Result()
		return n == 1
	})
	go func() { code, _ := b.get(t, "dan"); codes <- code }()
	for range 2 {
		if code := <-codes; code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
			t.Errorf("during the failed mint: %d, want 502 (the minter) or 503 (the waiter)", code)
		}
	}
	if n := c.mints(); n != 1 {
		t.Errorf("%d upstream calls, want the failed one only", n)
	}
	eventually(t, "dan is minted once the mark is gone", func() bool {
		code, _ := b.get(t, "dan")
		return code == http.StatusOK
	})
}

// Redis dying mid-run fails no browser: every answer is 200 or an honest 429/503 while it is down,
// the outage is logged once, and when it is back the replicas use it again without a restart.
func TestRedisDownAndBack(t *testing.T) {
	c := newCluster(t)
	cfg := iceserve.Config{RatePerMinute: -1, MintsPerSecond: 10000, MintBurst: 1000}
	o := redisstore.Options{RetryAfter: 100 * time.Millisecond}
	replicas := []*replica{c.replica(t, cfg, o), c.replica(t, cfg, o), c.replica(t, cfg, o)}

	ask := func(round int, n int) (codes map[int]int) {
		codes = map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			r := replicas[(i+round)%3]
			wg.Go(func() {
				code, body := r.get(t, fmt.Sprintf("user-%d", i))
				if code != http.StatusOK && code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
					t.Errorf("round %d: %d %s", round, code, body)
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	if codes := ask(0, 100); codes[http.StatusOK] != 100 {
		t.Fatalf("with Redis up: %v", codes)
	}
	// Kill Redis in the middle of a round, once its new identities have started minting.
	c.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 20 * time.Millisecond, Count: 50})
	mid := make(chan map[int]int)
	go func() { mid <- ask(1, 150) }()
	eventually(t, "the round is minting", func() bool { return c.mints() > 110 })
	c.redis.Stop()
	if codes := <-mid; codes[http.StatusOK] < 100 {
		t.Errorf("Redis killed mid-round: %v; want the cached identities served", codes)
	}
	for round := 2; round <= 3; round++ {
		codes := ask(round, 150) // 100 cached identities and 50 new ones
		if codes[http.StatusOK] < 100 {
			t.Errorf("Redis down, round %d: %v; want the cached identities served", round, codes)
		}
	}
	for _, r := range replicas {
		if r.store.Healthy() {
			t.Error("a replica reports Redis healthy while it is down")
		}
	}
	if n := strings.Count(c.logs.String(), "Redis unavailable"); n < 1 || n > 3 {
		t.Errorf("%d 'Redis unavailable' records from 3 replicas, want one each at most", n)
	}

	if err := c.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every replica uses Redis again", func() bool {
		ask(4, 10)
		for _, r := range replicas {
			if !r.store.Healthy() {
				return false
			}
		}
		return true
	})
	// Converged: a new identity minted on one replica is served by the others without a mint.
	before := c.mints()
	if code, _ := replicas[0].get(t, "after-restart"); code != http.StatusOK {
		t.Fatal(code)
	}
	replicas[1].get(t, "after-restart")
	replicas[2].get(t, "after-restart")
	if n := c.mints() - before; n != 1 {
		t.Errorf("after Redis came back: %d mints for one identity on 3 replicas, want 1", n)
	}
	if n := strings.Count(c.logs.String(), "Redis is back"); n != 3 {
		t.Errorf("%d 'Redis is back' records, want one per replica", n)
	}
}

// A Redis that hangs costs a request at most Timeout, after which the replica answers from local
// state without waiting on Redis again until RetryAfter has passed.
func TestRedisSlow(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{RatePerMinute: -1}, redisstore.Options{Timeout: 100 * time.Millisecond, RetryAfter: time.Hour, LocalTTL: time.Nanosecond})
	if code, _ := r.get(t, "dave"); code != http.StatusOK {
		t.Fatal(code)
	}
	if err := c.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	defer c.redis.Resume()
	start := time.Now()
	for range 20 {
		if code, body := r.get(t, "dave"); code != http.StatusOK {
			t.Fatalf("Redis hung: %d %s", code, body)
		}
	}
	// One operation waits out the timeout; the others skip Redis. The bound is loose for a
	// loaded machine, but 20 requests each waiting on Redis would take 2s or more.
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("20 requests took %v with Redis hung", took)
	}
	if r.store.Healthy() {
		t.Error("Healthy while Redis hangs")
	}
	st := r.store.Stats()
	if st.RedisFailures < 1 {
		t.Errorf("stats %+v: want the timeout counted", st)
	}
}

func TestNewChecksOptions(t *testing.T) {
	rdb, err := redisstore.NewClient("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for _, tc := range []struct {
		o    redisstore.Options
		want string
	}{
		{redisstore.Options{}, "KeyID and KeySecret are required"},
		{redisstore.Options{KeyID: "k", KeySecret: turn.NewSecret("s"), Timeout: -1}, "Options.Timeout must not be negative"},
		{redisstore.Options{KeyID: "k", KeySecret: turn.NewSecret("s"), LocalEntries: -1}, "Options.LocalEntries must not be negative"},
	} {
		if _, err := redisstore.New(rdb, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	if _, err := redisstore.New(nil, redisstore.Options{KeyID: "k", KeySecret: turn.NewSecret("s")}); err == nil {
		t.Error("a nil client was accepted")
	}
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	if _, err := redisstore.New(plain, redisstore.Options{KeyID: "k", KeySecret: turn.NewSecret("s")}); err == nil || !strings.Contains(err.Error(), "ContextTimeoutEnabled") {
		t.Errorf("a client without context timeouts: %v", err)
	}
	for _, url := range []string{"redis://user:hunter2@[::1", "redis://default:hunter2@127.0.0.1:6379/0\n",
		`redis://default:hun"ter2@127.0.0.1:6379/0` + "\x00", `redis://default:hunter2\@127.0.0.1:x/0`, "http://:hunter2@h:1"} {
		if _, err := redisstore.NewClient(url); err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ter2") {
			t.Errorf("%q: %v; want an error that does not quote the password", url, err)
		}
	}
}

// A drop while Redis is down says it reached this replica only, and still revokes the credential
// upstream, so TURN servers refuse it wherever it is served from.
func TestDropDuringOutage(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{}, redisstore.Options{})
	_, body := r.get(t, "erin")
	c.redis.Stop()
	err := r.handler.Drop(context.Background(), "erin", true)
	if err == nil || !strings.Contains(err.Error(), "this replica only") {
		t.Errorf("Drop with Redis down: %v, want it to say the drop reached this replica only", err)
	}
	if !c.fake.Revoked(username(t, body)) {
		t.Error("the credential was not revoked upstream")
	}
	if _, again := r.get(t, "erin"); bytes.Equal(again, body) {
		t.Error("this replica serves the dropped credential")
	}
}
