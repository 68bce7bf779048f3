package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Two serve-ice replicas given CFTURN_REDIS_URL share one credential per caller; with Redis gone
// they go on answering, stay ready, and say so on /readyz and /metrics.
func TestServeICERedis(t *testing.T) {
	rs := redisserver.Start(t)
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "replicas"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{redisURLEnv: "redis://" + rs.Addr}
	a := startServeICEOn(t, srv, key, env, "--identity-header", "X-User")
	b := startServeICEOn(t, srv, key, nil, "--identity-header", "X-User", "--redis-url", "redis://"+rs.Addr)

	codeA, bodyA := a.get(t, "/", "alice")
	codeB, bodyB := b.get(t, "/", "alice")
	if codeA != 200 || codeB != 200 || bodyA != bodyB {
		t.Errorf("replicas did not share alice's credential: %d %d\n%s\n%s", codeA, codeB, bodyA, bodyB)
	}
	if n := srv.Requests()["generateIceServers"]; n != 3 {
		t.Errorf("%d mints, want 3 (one start-up check per replica, one for alice)", n)
	}
	if code, body := a.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "redis: up") {
		t.Errorf("/readyz with Redis: %d %q", code, body)
	}
	if _, metrics := b.get(t, "/metrics", ""); !strings.Contains(metrics, "cfturn_redis_up 1") {
		t.Error("/metrics lacks cfturn_redis_up 1")
	}

	rs.Stop()
	if code, body := a.get(t, "/", "carol"); code != 200 {
		t.Errorf("with Redis down: %d %s", code, body)
	}
	if code, body := a.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "redis: down") {
		t.Errorf("/readyz with Redis down: %d %q, want ready and saying Redis is down", code, body)
	}
	if _, metrics := a.get(t, "/metrics", ""); !strings.Contains(metrics, "cfturn_redis_up 0") {
		t.Error("/metrics lacks cfturn_redis_up 0")
	}
	if n := strings.Count(a.stderr.String(), "Redis unavailable"); n != 1 {
		t.Errorf("%d 'Redis unavailable' log lines, want 1:\n%s", n, a.stderr)
	}
}

func TestServeICERedisURLRefused(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret, redisURLEnv: "redis://user:hunter2@[::1"},
		"serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID)
	r.check(t, 2)
	if !strings.Contains(r.stderr, redisURLEnv) || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("stderr %q: want the variable named and the password not shown", r.stderr)
	}
}

// rediss:// works with a private CA given by --redis-ca-file; without it the certificate is not
// trusted, and the replica serves on local state instead of failing.
func TestServeICERedisTLS(t *testing.T) {
	rs := redisserver.StartTLS(t)
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	url := "rediss://" + rs.Addr
	a := startServeICEOn(t, srv, key, map[string]string{redisURLEnv: url}, "--identity-header", "X-User", "--redis-ca-file", rs.CAFile)
	b := startServeICEOn(t, srv, key, map[string]string{redisURLEnv: url}, "--identity-header", "X-User", "--redis-ca-file", rs.CAFile)
	_, bodyA := a.get(t, "/", "alice")
	_, bodyB := b.get(t, "/", "alice")
	if bodyA != bodyB {
		t.Error("replicas on TLS Redis did not share alice's credential")
	}
	if code, body := a.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "redis: up") {
		t.Errorf("/readyz: %d %q", code, body)
	}

	// An untrusted certificate is configuration, not an outage: refused at start.
	r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret.Reveal(), redisURLEnv: url},
		"serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID)
	r.check(t, 2)
	if !strings.Contains(r.stderr, "x509") || !strings.Contains(r.stderr, "--redis-ca-file") {
		t.Errorf("untrusted certificate: %q", r.stderr)
	}

	r = cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": key.Secret.Reveal(), redisURLEnv: "redis://" + rs.Addr},
		"serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID, "--redis-ca-file", rs.CAFile)
	r.check(t, 2)
	if !strings.Contains(r.stderr, "rediss://") {
		t.Errorf("a CA file with a plain redis:// URL: %q", r.stderr)
	}
}

// A wrong Redis password stops serve-ice at start, without printing the password.
func TestServeICERedisWrongPassword(t *testing.T) {
	rs := redisserver.Start(t)
	admin, err := redisstore.NewClient("redis://" + rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.ConfigSet(context.Background(), "requirepass", "the-right-one").Err(); err != nil {
		t.Fatal(err)
	}
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret, redisURLEnv: "redis://default:hunter2@" + rs.Addr}
	// Bounded: a serve-ice that started anyway is stopped, and the test fails below.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	code := run(ctx, []string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID},
		strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	if code != 2 || !strings.Contains(stderr.String(), "Redis refused this replica") || strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// A Redis user without script permission stops serve-ice at start, with the permission named:
// otherwise sharing would be silently off while Redis answers PING.
func TestServeICERedisNoScriptPermission(t *testing.T) {
	rs := redisserver.Start(t)
	admin, err := redisstore.NewClient("redis://" + rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "noscript", "on", ">pw-noscript", "~*", "&*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	srv := turntest.NewServer()
	defer srv.Close()
	key := createKey(t, srv)
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret, redisURLEnv: "redis://noscript:pw-noscript@" + rs.Addr}
	// Bounded: a serve-ice that started anyway is stopped, and the test fails below.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	code := run(ctx, []string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID},
		strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	if code != 2 || !strings.Contains(stderr.String(), "+@scripting") || strings.Contains(stderr.String(), "pw-noscript") ||
		strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
		t.Errorf("exit %d, stderr %q: want exit 2, one line naming the missing +@scripting, and no password", code, stderr.String())
	}
}

// Redis on a closed port is reported as refused, not as a timeout, and serve-ice starts on local
// state.
func TestServeICERedisClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	a := startServeICEOn(t, srv, key, map[string]string{redisURLEnv: "redis://" + addr}, "--identity-header", "X-User")
	if code, body := a.get(t, "/", "alice"); code != 200 {
		t.Errorf("Redis down at start: %d %s", code, body)
	}
	if logs := a.stderr.String(); !strings.Contains(logs, "connection refused") || strings.Contains(logs, "deadline exceeded") {
		t.Errorf("want the dial error logged:\n%s", logs)
	}
}
