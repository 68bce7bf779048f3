package iceserve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// rotClock is a clock that moves only when the test says so.
type rotClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *rotClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rotClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var mintPath = regexp.MustCompile(`^/v1/turn/keys/([^/]+)/credentials/generate-ice-servers$`)

// mintLedger sits in front of the fake and records which key minted each username, so a test
// can tell which key a served credential came from. hold, when set, makes mints with that key
// wait until release is closed.
type mintLedger struct {
	fake *turntest.Fake

	mu      sync.Mutex
	byUser  map[string]string // username -> key ID
	mints   map[string]int    // key ID -> mints answered 201
	hold    string
	held    chan struct{} // closed when a held mint arrives
	release chan struct{}
}

func (l *mintLedger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := mintPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		l.fake.Handler().ServeHTTP(w, r)
		return
	}
	l.mu.Lock()
	hold := l.hold == m[1]
	held, release := l.held, l.release
	l.mu.Unlock()
	if hold {
		close(held)
		<-release
	}
	rec := httptest.NewRecorder()
	l.fake.Handler().ServeHTTP(rec, r)
	if rec.Code == http.StatusCreated {
		var body struct {
			IceServers []struct{ Username string } `json:"iceServers"`
		}
		json.Unmarshal(rec.Body.Bytes(), &body)
		l.mu.Lock()
		l.mints[m[1]]++
		for _, s := range body.IceServers {
			if s.Username != "" {
				l.byUser[s.Username] = m[1]
			}
		}
		l.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (l *mintLedger) keyOf(username string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byUser[username]
}

func (l *mintLedger) minted(keyID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mints[keyID]
}

// holdMints makes mints with keyID wait; the returned channel is closed when one arrives, and
// release lets them go.
func (l *mintLedger) holdMints(keyID string) (arrived <-chan struct{}, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold, l.held, l.release = keyID, make(chan struct{}), make(chan struct{})
	return l.held, sync.OnceFunc(func() { close(l.release) })
}

type rotEnv struct {
	fake     *turntest.Fake
	ledger   *mintLedger
	client   *turn.Client
	old, new turn.KeyWithSecret
	rot      *iceserve.Rotator
	srv      *httptest.Server
	clock    *rotClock
	logs     *syncbuf.Buffer
}

// rotSetup serves an Rotator on the old of two keys of the fake, the identity in X-User.
func rotSetup(t *testing.T, cfg iceserve.Config) *rotEnv {
	t.Helper()
	fake := turntest.New()
	ledger := &mintLedger{fake: fake, byUser: map[string]string{}, mints: map[string]int{}}
	api := httptest.NewServer(ledger)
	t.Cleanup(api.Close)
	client, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(fake.Token()), turn.WithAccountID(fake.AccountID()),
		turn.WithBaseURL(api.URL+"/client/v4"), turn.WithICEBaseURL(api.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e := &rotEnv{fake: fake, ledger: ledger, client: client, clock: &rotClock{now: time.Unix(1_800_000_000, 0)}, logs: &syncbuf.Buffer{}}
	for _, k := range []*turn.KeyWithSecret{&e.old, &e.new} {
		if *k, err = client.CreateKey(ctx, turn.CreateKeyParams{Name: "rotate"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Client, cfg.KeyID, cfg.KeySecret = client, e.old.ID, e.old.Secret
	cfg.IdentityHeader, cfg.Now = "X-User", e.clock.Now
	cfg.RatePerMinute = -1
	if cfg.TTL == 0 {
		cfg.TTL = time.Hour
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.rot, err = iceserve.NewRotator(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.rot)
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		for _, k := range []turn.KeyWithSecret{e.old, e.new} {
			if strings.Contains(e.logs.String(), k.Secret.Reveal()) {
				t.Error("a key secret reached the logs")
			}
		}
	})
	return e
}

// get asks srv for user's credential and returns the TURN username served.
func rotGet(t *testing.T, srv *httptest.Server, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	req.Header.Set("X-User", user)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", user, resp.StatusCode, b)
	}
	var body struct {
		IceServers []struct{ Username string } `json:"iceServers"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	for _, s := range body.IceServers {
		if s.Username != "" {
			return s.Username
		}
	}
	t.Fatalf("%s: no TURN username in %s", user, b)
	return ""
}

// TestRotatorSwitchesKey: after Rotate new mints use the new key, credentials cached with the
// old one are served until their refresh, and the counters never go back.
func TestRotatorSwitchesKey(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	ctx := context.Background()
	alice := rotGet(t, e.srv, "alice")
	if e.ledger.keyOf(alice) != e.old.ID {
		t.Fatalf("before the switch alice got a credential of key %q, want the old key", e.ledger.keyOf(alice))
	}
	before := e.rot.Stats()

	if err := e.rot.Rotate(ctx, iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret}); err != nil {
		t.Fatal(err)
	}
	if e.rot.KeyID() != e.new.ID || e.ledger.minted(e.new.ID) != 1 {
		t.Fatalf("after Rotate: key %s, %d check mints with the new key, want 1", e.rot.KeyID(), e.ledger.minted(e.new.ID))
	}
	if got := rotGet(t, e.srv, "alice"); got != alice {
		t.Errorf("alice's cached credential was not served until its refresh: got %s, want %s", got, alice)
	}
	if bob := rotGet(t, e.srv, "bob"); e.ledger.keyOf(bob) != e.new.ID {
		t.Errorf("bob, new after the switch, got a credential of key %q, want the new key", e.ledger.keyOf(bob))
	}
	e.clock.Advance(31 * time.Minute) // past RefreshFraction 0.5 of 1h
	if again := rotGet(t, e.srv, "alice"); again == alice || e.ledger.keyOf(again) != e.new.ID {
		t.Errorf("alice's refresh: %s of key %q, want a new credential of the new key", again, e.ledger.keyOf(again))
	}
	after := e.rot.Stats()
	if after.UpstreamCalls != before.UpstreamCalls+3 || after.CacheHits != before.CacheHits+1 || after.Identities != 2 {
		t.Errorf("stats before %+v, after %+v: want 3 more upstream calls (check, bob, alice), 1 more hit, 2 identities", before, after)
	}
	// The old key may now go: nothing mints with it.
	if _, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: e.old.ID}); err != nil {
		t.Fatal(err)
	}
	if carol := rotGet(t, e.srv, "carol"); e.ledger.keyOf(carol) != e.new.ID {
		t.Errorf("carol got a credential of key %q", e.ledger.keyOf(carol))
	}
	if !strings.Contains(e.logs.String(), "switched key") || !strings.Contains(e.logs.String(), e.new.ID) {
		t.Errorf("the switch was not logged:\n%s", e.logs.String())
	}
}

// TestRotatorRefusesBadKey: a key whose check mint fails is refused, logged without its
// secret, and the old key keeps serving.
func TestRotatorRefusesBadKey(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	ctx := context.Background()
	wrong := turn.NewSecret(strings.Repeat("f", 64))
	for name, p := range map[string]iceserve.RotateParams{
		"wrong secret":  {KeyID: e.new.ID, KeySecret: wrong},
		"unknown key":   {KeyID: strings.Repeat("0", 32), KeySecret: e.new.Secret},
		"malformed key": {KeyID: "short", KeySecret: e.new.Secret},
	} {
		err := e.rot.Rotate(ctx, p)
		if err == nil {
			t.Fatalf("%s: Rotate accepted it", name)
		}
		if strings.Contains(err.Error(), wrong.Reveal()) || strings.Contains(err.Error(), e.new.Secret.Reveal()) {
			t.Errorf("%s: the error shows a secret: %v", name, err)
		}
		if e.rot.KeyID() != e.old.ID {
			t.Fatalf("%s: the rotator switched to %s", name, e.rot.KeyID())
		}
		if u := rotGet(t, e.srv, name); e.ledger.keyOf(u) != e.old.ID {
			t.Errorf("%s: after the refusal a credential of key %q, want the old key", name, e.ledger.keyOf(u))
		}
	}
	if n := strings.Count(e.logs.String(), "new key refused"); n != 3 { // the malformed key too, though it fails before any mint
		t.Errorf("%d refusals logged, want 3:\n%s", n, e.logs.String())
	}
	if strings.Contains(e.logs.String(), wrong.Reveal()) {
		t.Error("the wrong secret reached the log")
	}
}

// TestRotatorDropCached: with DropCached, a credential cached with the old key is not served
// again; the caller's rate limit carries over.
func TestRotatorDropCached(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	alice := rotGet(t, e.srv, "alice")
	e.clock.Advance(time.Second)
	if err := e.rot.Rotate(context.Background(), iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret, DropCached: true}); err != nil {
		t.Fatal(err)
	}
	if again := rotGet(t, e.srv, "alice"); again == alice || e.ledger.keyOf(again) != e.new.ID {
		t.Errorf("with DropCached alice got %s of key %q, want a new credential of the new key", again, e.ledger.keyOf(again))
	}
	if st := e.rot.Stats(); st.Identities != 1 || st.Callers != 0 {
		// RatePerMinute is off in rotSetup, so no buckets; the old entry was replaced.
		t.Errorf("stats %+v", st)
	}
}

// TestRotatorInFlight: a request whose mint is running when the key changes finishes, with a
// credential of the key it started with.
func TestRotatorInFlight(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	arrived, release := e.ledger.holdMints(e.old.ID)
	defer release()
	done := make(chan string)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/", nil)
		req.Header.Set("X-User", "slow")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		var body struct {
			IceServers []struct{ Username string } `json:"iceServers"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		u := ""
		for _, s := range body.IceServers {
			u += s.Username
		}
		done <- u
	}()
	<-arrived
	if err := e.rot.Rotate(context.Background(), iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret}); err != nil {
		t.Fatal(err)
	}
	if u := rotGet(t, e.srv, "quick"); e.ledger.keyOf(u) != e.new.ID {
		t.Errorf("a request after the switch got key %q", e.ledger.keyOf(u))
	}
	release()
	u := <-done
	if e.ledger.keyOf(u) != e.old.ID {
		t.Errorf("the request in flight at the switch got %q of key %q, want a credential of the old key", u, e.ledger.keyOf(u))
	}
}

// TestRotatorRedisReplicas: two replicas share one redis-server during a rollout, one switched
// to the new key and one still on the old. Neither serves the other key's cached credentials as
// its own mint nor fails on them: the other key's entries are misses, and each answer is a live
// credential.
func TestRotatorRedisReplicas(t *testing.T) {
	rs := redisserver.Start(t)
	e := rotSetup(t, iceserve.Config{})
	ctx := context.Background()
	store := func(k turn.KeyWithSecret) *redisstore.Store {
		rdb, err := redisstore.NewClient("redis://" + rs.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		s, err := redisstore.New(rdb, redisstore.Options{KeyID: k.ID, KeySecret: k.Secret, LocalTTL: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	replica := func(k turn.KeyWithSecret) (*iceserve.Rotator, *httptest.Server) {
		r, err := iceserve.NewRotator(iceserve.Config{Client: e.client, KeyID: k.ID, KeySecret: k.Secret, Store: store(k),
			IdentityHeader: "X-User", RatePerMinute: -1, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		return r, srv
	}
	a, srvA := replica(e.old)
	_, srvB := replica(e.old)

	alice := rotGet(t, srvA, "alice")
	if got := rotGet(t, srvB, "alice"); got != alice {
		t.Fatalf("replicas on one key do not share the cache: %s and %s", alice, got)
	}
	// A switches; B is not rolled yet.
	if err := a.Rotate(ctx, iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret, Store: store(e.new)}); err != nil {
		t.Fatal(err)
	}
	if got := rotGet(t, srvA, "alice"); got != alice {
		t.Errorf("A after its switch: alice's credential of the old key was not served until refresh (%s, want %s)", got, alice)
	}
	bob := rotGet(t, srvA, "bob")
	if e.ledger.keyOf(bob) != e.new.ID {
		t.Fatalf("A minted bob's with key %q, want the new key", e.ledger.keyOf(bob))
	}
	// B, on the old key, cannot read A's entry (sealed with the new key): a miss, and its own mint.
	bobB := rotGet(t, srvB, "bob")
	if bobB == bob || e.ledger.keyOf(bobB) != e.old.ID {
		t.Errorf("B served bob %s of key %q, want its own credential of the old key", bobB, e.ledger.keyOf(bobB))
	}
	// A replica that starts on the new key shares A's entries.
	_, srvC := replica(e.new)
	if got := rotGet(t, srvC, "bob"); got != bob {
		t.Errorf("C on the new key served bob %s, want A's %s", got, bob)
	}
	if bytes.Contains([]byte(e.logs.String()), []byte(e.new.Secret.Reveal())) {
		t.Error("the secret reached the logs")
	}
}

// TestRotatorTURNREST: the TURN REST endpoint of a Rotator mints with the key in use at each
// request, so Janus callers move to the new key with the browsers.
func TestRotatorTURNREST(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	restSecret := "0123456789abcdef0123456789abcdef"
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret(restSecret))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.rot.TURNRESTHandler(keys))
	t.Cleanup(srv.Close)
	rest := func(user string) string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/?service=turn&username=" + user + "&key=" + restSecret)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Username string }
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 {
			t.Fatalf("TURN REST %s: %d %v", user, resp.StatusCode, err)
		}
		return a.Username
	}
	if u := rest("janus-1"); e.ledger.keyOf(u) != e.old.ID {
		t.Fatalf("before the switch: key %q", e.ledger.keyOf(u))
	}
	if err := e.rot.Rotate(context.Background(), iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret}); err != nil {
		t.Fatal(err)
	}
	if u := rest("janus-2"); e.ledger.keyOf(u) != e.new.ID {
		t.Errorf("after the switch a new TURN REST caller got key %q, want the new key", e.ledger.keyOf(u))
	}
}

// TestRotatorDropRevokesWithTheMintingKey: after two switches, Drop with revoke revokes a
// credential with the key that minted it, old or new; one of a key the rotator no longer holds is
// an error that says so.
func TestRotatorDropRevokesWithTheMintingKey(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	ctx := context.Background()
	alice := rotGet(t, e.srv, "alice") // minted with the old key
	third, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "rotate"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []turn.KeyWithSecret{e.new, third} {
		e.clock.Advance(time.Second)
		if err := e.rot.Rotate(ctx, iceserve.RotateParams{KeyID: k.ID, KeySecret: k.Secret}); err != nil {
			t.Fatal(err)
		}
	}
	bob := rotGet(t, e.srv, "bob") // minted with the third key
	for user, username := range map[string]string{"alice": alice, "bob": bob} {
		if err := e.rot.Drop(ctx, user, true); err != nil {
			t.Errorf("drop %s: %v", user, err)
		}
		if !e.fake.Revoked(username) {
			t.Errorf("%s's credential, of key %s, was not revoked", user, e.ledger.keyOf(username))
		}
	}
	if e.ledger.keyOf(alice) != e.old.ID || e.ledger.keyOf(bob) != third.ID {
		t.Fatalf("alice's credential is of key %s, bob's of %s: the test did not set up what it means to", e.ledger.keyOf(alice), e.ledger.keyOf(bob))
	}

	// A credential of a key five switches back: the rotator no longer holds that key, every key it
	// holds answers 404, and the error says so.
	carol := rotGet(t, e.srv, "carol")
	for range 5 {
		k, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "rotate"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.rot.Rotate(ctx, iceserve.RotateParams{KeyID: k.ID, KeySecret: k.Secret}); err != nil {
			t.Fatal(err)
		}
	}
	err = e.rot.Drop(ctx, "carol", true)
	if !errors.Is(err, turn.ErrNotFound) || !strings.Contains(err.Error(), "none of the 5 keys used lately knows the credential") || e.fake.Revoked(carol) {
		t.Errorf("drop of a credential of a key no longer held: %v (revoked: %v)", err, e.fake.Revoked(carol))
	}
	if strings.Contains(fmt.Sprint(err), third.Secret.Reveal()) || strings.Contains(fmt.Sprint(err), e.old.Secret.Reveal()) {
		t.Error("a key secret reached the error")
	}
}

// TestRotatorSameKeyKeepsOlderKeys: rotating to the key in use again changes nothing Drop relies
// on: the previous key is still tried, however often the current one is checked again.
func TestRotatorSameKeyKeepsOlderKeys(t *testing.T) {
	e := rotSetup(t, iceserve.Config{})
	ctx := context.Background()
	alice := rotGet(t, e.srv, "alice") // minted with the old key
	for range 6 {
		e.clock.Advance(time.Second)
		if err := e.rot.Rotate(ctx, iceserve.RotateParams{KeyID: e.new.ID, KeySecret: e.new.Secret}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.rot.Drop(ctx, "alice", true); err != nil || !e.fake.Revoked(alice) {
		t.Errorf("drop after one switch and five rotations to the same key: %v, revoked %v", err, e.fake.Revoked(alice))
	}
}
