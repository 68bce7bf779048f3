package redisstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// A server that answers the drop listener's SUBSCRIBE and the request path's scripts with an
// array of 2^63-1 elements crashes nothing. A client of NewClient closes the connection on the
// announcement; on a client made otherwise the reader panics, and the store recovers the panic as
// a Redis failure. Either way the replica answers from local state and logs the outage once.
func TestHostileRedisNeverCrashes(t *testing.T) {
	huge := "*9223372036854775807\r\n"
	addr := hostileRedis(t, map[string]string{"SUBSCRIBE": huge, "EVALSHA": huge, "EVAL": huge})
	for name, tc := range map[string]struct {
		client func() *redis.Client
		want   string
	}{
		"NewClient": {func() *redis.Client {
			rdb, err := redisstore.NewClient("redis://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			return rdb
		}, "closing the connection"},
		"own client": {func() *redis.Client {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		}, "panicked"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t)
			r := c.replicaWith(t, tc.client(), iceserve.Config{}, redisstore.Options{Timeout: time.Second})
			eventually(t, "a Redis call fails", func() bool { return r.store.Stats().RedisFailures >= 1 })
			for _, user := range []string{"alice", "bob"} {
				if code, body := r.get(t, user); code != http.StatusOK {
					t.Errorf("%s: %d %s, want 200 from local state", user, code, body)
				}
			}
			if err := r.store.Check(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want an error saying %q", err, tc.want)
			}
			logs := c.logs.String()
			if n := strings.Count(logs, "Redis unavailable"); n != 1 || !strings.Contains(logs, tc.want) {
				t.Errorf("%d 'Redis unavailable' records, want 1 saying %q:\n%s", n, tc.want, logs)
			}
		})
	}
}

// redisOutputBytes is how many bytes redis-server has sent to its clients.
func redisOutputBytes(t *testing.T, r *replica) int64 {
	t.Helper()
	info, err := r.rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO stats")
	return 0
}

// A foreign value under an identity's keys (key names are visible on a shared Redis) is never
// read whole and never makes the replica give up on Redis: under the credential key a 32 MiB
// string, a hash, and a value with no expiry are each a miss, logged; under the limiter and
// lease keys, a hash or a long string is replaced. Every identity is minted and served.
func TestForeignValuesAreMisses(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{}, redisstore.Options{})
	ctx := context.Background()
	name := func(kind, user string) string {
		return redisstore.DefaultPrefix + c.key.ID + ":" + kind + ":" + identityKey(t, r, user)
	}
	for _, err := range []error{
		r.rdb.Set(ctx, name("cred", "alice"), strings.Repeat("x", 32<<20), time.Hour).Err(),
		r.rdb.HSet(ctx, name("cred", "bob"), "f", "v").Err(),
		r.rdb.Set(ctx, name("cred", "carol"), "no expiry", 0).Err(),
		r.rdb.HSet(ctx, name("rate", "dave"), "f", "v").Err(),
		r.rdb.Set(ctx, name("rate", "erin"), strings.Repeat("9", 1<<20), 0).Err(),
		r.rdb.HSet(ctx, name("lease", "frank"), "f", "v").Err(),
		r.rdb.Set(ctx, name("lease", "grace"), "forever", 0).Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}
	before := redisOutputBytes(t, r)
	for _, user := range users {
		if code, body := r.get(t, user); code != http.StatusOK {
			t.Errorf("%s: %d %s", user, code, body)
		}
	}
	if sent := redisOutputBytes(t, r) - before; sent > 1<<20 {
		t.Errorf("Redis sent %d bytes to serve %d callers: a foreign value was read", sent, len(users))
	}
	if st := r.store.Stats(); st.RedisFailures != 0 || !st.Healthy {
		t.Errorf("stats %+v: a foreign value made Redis fail", st)
	}
	if n := c.mints(); n != len(users) {
		t.Errorf("%d mints, want %d", n, len(users))
	}
	if !strings.Contains(c.logs.String(), "no replica wrote") {
		t.Errorf("the foreign value was not logged:\n%s", c.logs)
	}
}

// A credential larger than MaxValueBytes is served from this replica and never written to Redis.
func TestOversizedCredentialStaysLocal(t *testing.T) {
	c := newCluster(t)
	r := c.replica(t, iceserve.Config{}, redisstore.Options{MaxValueBytes: 64})
	if code, body := r.get(t, "alice"); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	n, err := r.rdb.Exists(context.Background(), redisstore.DefaultPrefix+c.key.ID+":cred:"+identityKey(t, r, "alice")).Result()
	if err != nil || n != 0 {
		t.Errorf("an over-sized credential reached Redis (%d, %v)", n, err)
	}
	if !strings.Contains(c.logs.String(), "over MaxValueBytes") {
		t.Errorf("not logged:\n%s", c.logs)
	}
}

// A Redis user that may not run scripts is found by Check, with the permission named, and
// Healthy says Redis is down: the store cannot share state through it, though it answers PING.
func TestNoScriptPermission(t *testing.T) {
	c := newCluster(t)
	admin := c.replica(t, iceserve.Config{}, redisstore.Options{})
	if err := admin.rdb.Do(context.Background(), "ACL", "SETUSER", "noscript", "on", ">pw-noscript", "~*", "&*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	r := c.replicaOn(t, "redis://noscript:pw-noscript@"+c.redis.Addr, iceserve.Config{}, redisstore.Options{RetryAfter: time.Nanosecond})
	err := r.store.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "+@scripting") || strings.Contains(err.Error(), "pw-noscript") {
		t.Errorf("Check: %v; want the missing +@scripting named, and no password", err)
	}
	for range 5 {
		if code, body := r.get(t, "alice"); code != http.StatusOK {
			t.Errorf("%d %s", code, body)
		}
	}
	if r.store.Healthy() {
		t.Error("Healthy with a user that may not run the store's scripts")
	}
	if n := strings.Count(c.logs.String(), "Redis is back"); n != 0 {
		t.Errorf("health flipped back %d times while every script is refused:\n%s", n, c.logs)
	}
	if err := admin.store.Check(context.Background()); err != nil {
		t.Errorf("Check with full permissions: %v", err)
	}
}

// A closed port is reported as refused, not as a timeout, by Check and in the outage log.
func TestClosedPortIsReportedRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newCluster(t)
	r := c.replicaOn(t, "redis://"+addr, iceserve.Config{}, redisstore.Options{Timeout: time.Second})
	if code, body := r.get(t, "alice"); code != http.StatusOK {
		t.Errorf("%d %s, want 200 from local state", code, body)
	}
	err = r.store.Check(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Check: %v, want connection refused", err)
	}
	if logs := c.logs.String(); !strings.Contains(logs, "connection refused") || strings.Contains(logs, "deadline") {
		t.Errorf("the outage is not logged as refused:\n%s", logs)
	}
}

// A drop during the pause after a Redis hiccup still reaches Redis: no replica serves the
// dropped credential again.
func TestDropDuringPauseReachesRedis(t *testing.T) {
	c := newCluster(t)
	a := c.replica(t, iceserve.Config{RatePerMinute: -1}, redisstore.Options{Timeout: time.Second, RetryAfter: time.Hour})
	b := c.replica(t, iceserve.Config{RatePerMinute: -1}, redisstore.Options{LocalTTL: time.Nanosecond})
	_, first := a.get(t, "alice")
	if _, fromB := b.get(t, "alice"); string(fromB) != string(first) {
		t.Fatal("b does not share a's credential")
	}
	// A hiccup: one of a's calls times out, and a stays off Redis for RetryAfter.
	if err := c.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	a.get(t, "someone-else")
	if err := c.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	if a.store.Stats().RedisFailures == 0 {
		t.Fatal("no hiccup")
	}
	if err := a.handler.Drop(context.Background(), "alice", true); err != nil {
		t.Errorf("Drop after the hiccup: %v", err)
	}
	if _, again := b.get(t, "alice"); string(again) == string(first) {
		t.Error("b serves the credential dropped (and revoked) on a")
	}
}

// A drop that cannot reach Redis says so, and is sent when Redis answers again. Redis refuses
// the replica's user for a while (ACL), so the drop surely does not reach it meanwhile.
func TestDropQueuedUntilRedisAnswers(t *testing.T) {
	c := newCluster(t)
	admin := c.replica(t, iceserve.Config{RatePerMinute: -1}, redisstore.Options{LocalTTL: time.Nanosecond})
	acl := func(rules ...any) {
		t.Helper()
		if err := admin.rdb.Do(context.Background(), append([]any{"ACL", "SETUSER", "flaky"}, rules...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	acl("on", ">pw-flaky", "~*", "&*", "+@all")
	a := c.replicaOn(t, "redis://flaky:pw-flaky@"+c.redis.Addr, iceserve.Config{RatePerMinute: -1},
		redisstore.Options{RetryAfter: 50 * time.Millisecond, ReserveIdle: 50 * time.Millisecond})
	_, first := a.get(t, "alice")
	if _, fromAdmin := admin.get(t, "alice"); string(fromAdmin) != string(first) {
		t.Fatal("the replicas do not share alice's credential")
	}
	acl("-@all")
	err := a.handler.Drop(context.Background(), "alice", true)
	if err == nil || !strings.Contains(err.Error(), "when Redis answers") {
		t.Errorf("Drop with Redis refusing: %v, want it to say the drop waits for Redis", err)
	}
	if _, again := a.get(t, "alice"); string(again) == string(first) {
		t.Error("a serves the credential it dropped")
	}
	acl("+@all")
	// Until then the other replica serves it from Redis (the drop said so); after, never again.
	eventually(t, "the queued drop reaches Redis", func() bool {
		_, body := admin.get(t, "alice")
		return string(body) != string(first)
	})
	for range 3 {
		if _, again := admin.get(t, "alice"); string(again) == string(first) {
			t.Error("another replica serves the dropped credential again")
		}
	}
}

// Waiters on another replica wait for a slow mint up to the handler's RequestTimeout, not the
// lease's life: with a 4s upstream and a 1s lease, b's caller gets the credential a minted.
func TestWaitersOutlastTheLease(t *testing.T) {
	c := newCluster(t)
	o := redisstore.Options{Timeout: time.Second, LeaseTTL: time.Second}
	a, b := c.replica(t, iceserve.Config{}, o), c.replica(t, iceserve.Config{}, o)
	c.fake.InjectFault(turntest.Fault{Operation: "generateIceServers", Delay: 4 * time.Second, Count: 1})
	type answer struct {
		code int
		body string
	}
	fromA := make(chan answer, 1)
	go func() { code, body := a.get(t, "dan"); fromA <- answer{code, string(body)} }()
	eventually(t, "a holds dan's lease", func() bool {
		n, _ := a.rdb.Exists(context.Background(), redisstore.DefaultPrefix+c.key.ID+":lease:"+identityKey(t, a, "dan")).Result()
		return n == 1
	})
	code, body := b.get(t, "dan")
	got := <-fromA
	if code != http.StatusOK || got.code != http.StatusOK || string(body) != got.body {
		t.Errorf("a: %d, b: %d %s; want both 200 with one credential", got.code, code, body)
	}
	if n := c.mints(); n != 1 {
		t.Errorf("%d mints, want 1", n)
	}
}

// A minter whose clock runs 6 minutes fast cannot make another replica serve its credential past
// the real expiry: the reader counts the credential's life on Redis's clock.
func TestFreshnessOnRedisClock(t *testing.T) {
	c := newCluster(t)
	fast := func() time.Time { return time.Now().Add(6 * time.Minute) }
	cfg := iceserve.Config{TTL: 10 * time.Minute, RatePerMinute: -1}
	fastCfg := cfg
	fastCfg.Now = fast
	a := c.replica(t, fastCfg, redisstore.Options{Now: fast})
	b := c.replica(t, cfg, redisstore.Options{})
	if code, body := a.get(t, "erin"); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	minted := time.Now()
	sum := sha256.Sum256([]byte("erin"))
	cred, err := b.store.Credential(context.Background(), string(sum[:16]))
	if err != nil || cred == nil {
		t.Fatalf("b finds no credential: %v", err)
	}
	realExpiry := minted.Add(10 * time.Minute)
	if d := cred.Expires.Sub(realExpiry); d > time.Second || d < -5*time.Second {
		t.Errorf("b counts the credential to expire %v from its real expiry", d)
	}
	if d := cred.FreshUntil.Sub(minted.Add(5 * time.Minute)); d > time.Second || d < -5*time.Second {
		t.Errorf("b counts the credential fresh %v past half its real life", d)
	}
	code, body := b.get(t, "erin")
	var answer struct {
		ExpiresAt int64 `json:"expiresAt"`
	}
	if err := json.Unmarshal(body, &answer); code != http.StatusOK || err != nil {
		t.Fatalf("%d %s", code, body)
	}
	if d := time.Unix(answer.ExpiresAt, 0).Sub(realExpiry); d > 2*time.Second || d < -5*time.Second {
		t.Errorf("b's answer says expiresAt %v from the real expiry", d)
	}
	if n := c.mints(); n != 1 {
		t.Errorf("%d mints, want 1", n)
	}
}

// A server that announces a 1 GB string, or sends a line that never ends, costs the replica no
// such memory: the connection is closed on the announcement, and the replica answers from local
// state.
func TestHostileRedisRepliesAreBounded(t *testing.T) {
	for name, reply := range map[string]string{
		"1 GB string":        "$1000000000\r\n",
		"100M-element array": "*100000000\r\n",
		"endless line":       "+" + strings.Repeat("x", 1<<20),
		// The client reads nested aggregates recursively: a stack overflow is fatal, unlike a panic.
		"nested 1M deep": strings.Repeat("*1\r\n", 1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			addr := hostileRedis(t, map[string]string{"EVALSHA": reply, "EVAL": reply, "SUBSCRIBE": reply})
			c := newCluster(t)
			r := c.replicaOn(t, "redis://"+addr, iceserve.Config{}, redisstore.Options{Timeout: time.Second})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for _, user := range []string{"alice", "bob", "carol"} {
				if code, body := r.get(t, user); code != http.StatusOK {
					t.Errorf("%s: %d %s, want 200 from local state", user, code, body)
				}
			}
			err := r.store.Check(context.Background())
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("the replica allocated %d MiB for what the server announced", grew>>20)
			}
			if err == nil || !strings.Contains(err.Error(), "closing the connection") {
				t.Errorf("Check: %v, want the bound named", err)
			}
		})
	}
}
