package redisstore_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// cluster is one fake Cloudflare, one real redis-server and the TURN key the replicas share.
type cluster struct {
	fake  *turntest.Server
	redis *redisserver.Server
	key   turn.KeyWithSecret
	logs  *syncbuf.Buffer
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	fake := turntest.NewServer()
	t.Cleanup(fake.Close)
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "replicas"})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{fake: fake, redis: redisserver.Start(t), key: key, logs: &syncbuf.Buffer{}}
	t.Cleanup(func() {
		if s := c.logs.String(); bytes.Contains([]byte(s), []byte(key.Secret.Reveal())) {
			t.Errorf("the key secret reached the logs")
		}
	})
	return c
}

// replica is one iceserve.Handler with its own Redis-backed store, served on loopback.
type replica struct {
	store   *redisstore.Store
	handler *iceserve.Handler
	srv     *httptest.Server
	rdb     *redis.Client
}

func (c *cluster) replica(t *testing.T, cfg iceserve.Config, o redisstore.Options) *replica {
	t.Helper()
	return c.replicaOn(t, "redis://"+c.redis.Addr, cfg, o)
}

// replicaOn is replica on the Redis at url.
func (c *cluster) replicaOn(t *testing.T, url string, cfg iceserve.Config, o redisstore.Options) *replica {
	t.Helper()
	rdb, err := redisstore.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	return c.replicaWith(t, rdb, cfg, o)
}

// replicaWith is replica on client rdb, which it closes at the end of the test.
func (c *cluster) replicaWith(t *testing.T, rdb *redis.Client, cfg iceserve.Config, o redisstore.Options) *replica {
	t.Helper()
	t.Cleanup(func() { rdb.Close() })
	var store *redisstore.Store
	var err error
	o.KeyID, o.KeySecret = c.key.ID, c.key.Secret
	if o.Timeout == 0 {
		// Generous for a loaded 2-core machine under -race; TestRedisSlow covers a short one.
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = newLogger(c.logs)
	}
	store, err = redisstore.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg.Client, cfg.KeyID, cfg.KeySecret, cfg.Store = c.fake.Client(), c.key.ID, c.key.Secret, store
	if cfg.IdentityHeader == "" {
		cfg.IdentityHeader = "X-User"
	}
	cfg.Logger = newLogger(c.logs)
	h, err := iceserve.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &replica{store: store, handler: h, srv: srv, rdb: rdb}
}

// get asks r for user's credentials and returns the status and body.
func (r *replica) get(t *testing.T, user string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL, nil)
	req.Header.Set("X-User", user)
	res, err := r.srv.Client().Do(req)
	if err != nil {
		t.Errorf("GET as %s: %v", user, err)
		return 0, nil
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return res.StatusCode, b.Bytes()
}

func (c *cluster) mints() int { return c.fake.Requests()["generateIceServers"] }

// eventually polls cond every 10ms for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// identityKey is the name the Redis keys of identity end in on r's store.
func identityKey(t *testing.T, r *replica, identity string) string {
	t.Helper()
	return redisstore.RedisName(r.store, identity)
}

// username is the TURN username in an iceserve.Handler answer.
func username(t *testing.T, body []byte) string {
	t.Helper()
	var ice turn.ICEServers
	if err := ice.UnmarshalJSON(body); err != nil {
		t.Fatal(err)
	}
	for _, s := range ice.Servers {
		if s.Username != "" {
			return s.Username
		}
	}
	t.Fatalf("no TURN username in %s", body)
	return ""
}
