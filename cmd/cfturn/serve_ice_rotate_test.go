package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// rotationEnv is serve-ice reading its key from files, against a fake holding two keys.
type rotationEnv struct {
	*serveICEEnv
	old, new         turn.KeyWithSecret
	idFile, secretFn string
	probes           int
}

// writeFile replaces path's content atomically, as the kubelet updates a mounted secret.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startRotation runs serve-ice with --key-id-file and --key-secret-file naming the old key.
func startRotation(t *testing.T, env map[string]string, args ...string) *rotationEnv {
	t.Helper()
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	return startRotationOn(t, srv, env, args...)
}

// startRotationOn is startRotation against srv.
func startRotationOn(t *testing.T, srv *turntest.Server, env map[string]string, args ...string) *rotationEnv {
	t.Helper()
	e := &rotationEnv{}
	for _, k := range []*turn.KeyWithSecret{&e.old, &e.new} {
		var err error
		if *k, err = srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "rotate"}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	e.idFile, e.secretFn = filepath.Join(dir, "key-id"), filepath.Join(dir, "key-secret")
	writeFile(t, e.idFile, e.old.ID)
	writeFile(t, e.secretFn, e.old.Secret.Reveal())

	se := &serveICEEnv{srv: srv, key: e.old, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	argv := append([]string{"--base-url", srv.APIBaseURL, "serve-ice", "--addr", "127.0.0.1:0", "--identity-header", "X-User",
		"--key-id-file", e.idFile, "--key-secret-file", e.secretFn}, args...)
	go func() {
		done <- run(ctx, argv, strings.NewReader(""), se.stdout, se.stderr, func(k string) string { return env[k] })
	}()
	re := regexp.MustCompile(`on (http://\S+) `)
	for deadline := time.Now().Add(10 * time.Second); se.url == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(se.stdout.String()); m != nil {
			se.url = m[1]
		}
	}
	if se.url == "" {
		cancel()
		t.Fatalf("serve-ice printed no URL:\nstdout: %s\nstderr: %s", se.stdout, se.stderr)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve-ice exit %d after Ctrl-C", code)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve-ice did not stop")
		}
		out := se.stderr.String() + se.stdout.String()
		for _, s := range []string{e.old.Secret.Reveal(), e.new.Secret.Reveal(), strings.Repeat("f", 64)} {
			if strings.Contains(out, s) {
				t.Error("a secret reached the output")
			}
		}
	})
	e.serveICEEnv = se
	return e
}

// username asks serve-ice for user's credential and returns its TURN username.
func (e *rotationEnv) username(t *testing.T, user string) string {
	t.Helper()
	code, body := e.get(t, "/", user)
	if code != 200 {
		t.Fatalf("%s: %d %s", user, code, body)
	}
	var answer struct {
		IceServers []struct{ Username string } `json:"iceServers"`
	}
	json.Unmarshal([]byte(body), &answer)
	for _, s := range answer.IceServers {
		if s.Username != "" {
			return s.Username
		}
	}
	t.Fatalf("%s: no TURN username in %s", user, body)
	return ""
}

// mintsWith reports whether a new caller's credential was minted with key: revoking it with that
// key succeeds only then (the fake answers 404 for another key's credential).
func (e *rotationEnv) mintsWith(t *testing.T, key turn.KeyWithSecret) bool {
	t.Helper()
	e.probes++
	u := e.username(t, "probe-"+strings.Repeat("x", e.probes))
	err := e.srv.Client().RevokeICECredential(context.Background(), turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: u})
	return err == nil
}

// waitLog waits until serve-ice has logged want n times.
func (e *rotationEnv) waitLog(t *testing.T, want string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); strings.Count(e.stderr.String(), want) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve-ice did not log %q %d times:\n%s", want, n, e.stderr)
		}
	}
}

// TestServeICEKeyFileRotation: serve-ice polls its key files; a bad new key (the new ID with a
// wrong secret, as when one file is updated before the other) is refused and logged while the old
// key serves, and the right one is switched to without a restart. Cached credentials of the old
// key are served until their refresh.
func TestServeICEKeyFileRotation(t *testing.T) {
	e := startRotation(t, nil, "--key-poll", "20ms")
	alice := e.username(t, "alice")
	if !e.mintsWith(t, e.old) {
		t.Fatal("serve-ice does not mint with the key its files name")
	}

	writeFile(t, e.idFile, e.new.ID) // the secret file still holds the old key's secret
	e.waitLog(t, "new key refused", 1)
	if !e.mintsWith(t, e.old) {
		t.Fatal("after refusing a bad key serve-ice no longer mints with the old one")
	}
	if n := strings.Count(e.stderr.String(), "new key found"); n != 1 {
		t.Errorf("the refused key was checked %d times, want once (not once per poll)", n)
	}

	writeFile(t, e.secretFn, e.new.Secret.Reveal())
	e.waitLog(t, "switched key", 1)
	if !e.mintsWith(t, e.new) {
		t.Fatal("after the switch serve-ice does not mint with the new key")
	}
	if got := e.username(t, "alice"); got != alice {
		t.Errorf("alice's cached credential of the old key was not served until its refresh")
	}
	// The old key can go now: serve-ice no longer needs it.
	if _, err := e.srv.Client().DeleteKey(context.Background(), turn.KeyParams{KeyID: e.old.ID}); err != nil {
		t.Fatal(err)
	}
	if code, body := e.get(t, "/", "bob"); code != 200 {
		t.Errorf("after deleting the old key: %d %s", code, body)
	}
	if code, _ := e.get(t, "/readyz", ""); code != 200 {
		t.Errorf("/readyz after the switch: %d", code)
	}
}

// TestServeICEKeySIGHUP: with polling off, SIGHUP makes serve-ice read its key files and switch;
// --drop-cached-on-rotate stops serving the old key's cached credentials at once.
func TestServeICEKeySIGHUP(t *testing.T) {
	e := startRotation(t, nil, "--key-poll", "0", "--drop-cached-on-rotate")
	alice := e.username(t, "alice")
	writeFile(t, e.idFile, e.new.ID)
	writeFile(t, e.secretFn, e.new.Secret.Reveal())
	if !e.mintsWith(t, e.old) {
		t.Fatal("serve-ice switched before SIGHUP with --key-poll 0")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitLog(t, "switched key", 1)
	if !e.mintsWith(t, e.new) {
		t.Fatal("after SIGHUP serve-ice does not mint with the new key")
	}
	if got := e.username(t, "alice"); got == alice {
		t.Error("with --drop-cached-on-rotate alice was served her credential of the old key")
	}
	// A second SIGHUP with the same files changes nothing.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitLog(t, "the key is unchanged", 1)
}

// TestServeICEKeyRotationRedis: serve-ice on Redis switches to a store of the new key, and a
// replica still on the old key goes on serving from its own.
func TestServeICEKeyRotationRedis(t *testing.T) {
	rs := redisserver.Start(t)
	env := map[string]string{redisURLEnv: "redis://" + rs.Addr}
	e := startRotation(t, env, "--key-poll", "20ms")
	old := startServeICEOn(t, e.srv, e.old, env, "--identity-header", "X-User")
	alice := e.username(t, "alice")
	callsBefore := redisCalls(t, e.serveICEEnv)

	writeFile(t, e.secretFn, e.new.Secret.Reveal())
	writeFile(t, e.idFile, e.new.ID)
	e.waitLog(t, "switched key", 1)
	bob := e.username(t, "bob")
	// /readyz and /metrics follow the new key's store, and the counters do not go back.
	if code, body := e.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "redis: up") {
		t.Errorf("/readyz after the switch: %d %q", code, body)
	}
	if after := redisCalls(t, e.serveICEEnv); after <= callsBefore {
		t.Errorf("cfturn_redis_calls_total went from %d to %d across the switch", callsBefore, after)
	}
	if !e.mintsWith(t, e.new) {
		t.Fatal("after the switch serve-ice does not mint with the new key")
	}
	rdb, err := redisstore.NewClient("redis://" + rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "cfturn:"+e.new.ID+":cred:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no credential cached in Redis under the new key (%v): %v", err, keys)
	}
	// The replica on the old key shares alice's credential but not bob's.
	if code, body := old.get(t, "/", "alice"); code != 200 || !strings.Contains(body, alice) {
		t.Errorf("the old-key replica does not serve alice's shared credential: %d %s", code, body)
	}
	if code, body := old.get(t, "/", "bob"); code != 200 || strings.Contains(body, bob) {
		t.Errorf("the old-key replica served the new key's credential for bob, or failed: %d %s", code, body)
	}
}

// redisCalls reads cfturn_redis_calls_total from serve-ice's /metrics.
func redisCalls(t *testing.T, e *serveICEEnv) int {
	t.Helper()
	_, metrics := e.get(t, "/metrics", "")
	m := regexp.MustCompile(`(?m)^cfturn_redis_calls_total (\d+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics has no cfturn_redis_calls_total:\n%s", metrics)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
