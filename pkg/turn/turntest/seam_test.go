package turntest_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// mintOne mints a credential of key through the client and returns its username and password.
func mintOne(t *testing.T, srv *turntest.Server, key turn.KeyWithSecret, ttl time.Duration, ident string) (string, string) {
	t.Helper()
	ice, err := srv.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{
		KeyID: key.ID, KeySecret: key.Secret, TTL: ttl, CustomIdentifier: ident,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ice.Servers {
		if s.Username != "" {
			return s.Username, s.Credential.Reveal()
		}
	}
	t.Fatalf("no credential in %v", ice.Servers)
	return "", ""
}

func newKey(t *testing.T, srv *turntest.Server) turn.KeyWithSecret {
	t.Helper()
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "seam"})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// LookupCredential hands a relay what it needs of a credential and says whether it is live, and
// why not, in every way a credential dies.
func TestLookupCredential(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	srv := turntest.NewServer(turntest.WithClock(clock.Now), turntest.WithMaxCredentials(4))
	t.Cleanup(srv.Close)
	key := newKey(t, srv)

	user, pass := mintOne(t, srv, key, time.Hour, "user-42")
	c := srv.LookupCredential(user)
	want := turntest.Credential{Username: user, KeyID: key.ID, CustomIdentifier: "user-42", Expires: clock.Now().Add(time.Hour), State: turntest.CredentialLive}
	got := c
	got.Password = turn.Secret{}
	if !c.Live() || c.Password.Reveal() != pass || !reflect.DeepEqual(got, want) {
		t.Errorf("live credential: %+v (password matches: %v), want %+v", c, c.Password.Reveal() == pass, want)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, pass) {
		t.Errorf("a printed Credential shows its password: %s", s)
	}

	if err := srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: user}); err != nil {
		t.Fatal(err)
	}
	expiring, _ := mintOne(t, srv, key, time.Minute, "")
	clock.Add(time.Minute)
	for name, want := range map[string]turntest.CredentialState{
		user: turntest.CredentialRevoked, expiring: turntest.CredentialExpired, "never-minted": turntest.CredentialUnknown,
	} {
		if c := srv.LookupCredential(name); c.State != want || c.Live() {
			t.Errorf("%s: state %v, want %v", name, c.State, want)
		}
	}
	if c := srv.LookupCredential("never-minted"); c.KeyID != "" || !c.Password.IsZero() || c.Username != "never-minted" {
		t.Errorf("unknown credential: %+v, want only its username", c)
	}

	orphan, _ := mintOne(t, srv, key, time.Hour, "")
	if _, err := srv.Client().DeleteKey(ctx, turn.KeyParams{KeyID: key.ID}); err != nil {
		t.Fatal(err)
	}
	if c := srv.LookupCredential(orphan); c.State != turntest.CredentialKeyDeleted {
		t.Errorf("credential of a deleted key: state %v", c.State)
	}

	// The table holds 4: four newer mints evict the orphan.
	other := newKey(t, srv)
	for range 4 {
		mintOne(t, srv, other, time.Hour, "")
	}
	if c := srv.LookupCredential(orphan); c.State != turntest.CredentialUnknown {
		t.Errorf("evicted credential: state %v, want %v", c.State, turntest.CredentialUnknown)
	}

	for state, want := range map[turntest.CredentialState]string{
		turntest.CredentialLive: "live", turntest.CredentialUnknown: "unknown or evicted credential",
		turntest.CredentialRevoked: "credential revoked", turntest.CredentialExpired: "credential expired",
		turntest.CredentialKeyDeleted: "the credential's key was deleted", 99: "CredentialState(99)",
	} {
		if got := state.String(); got != want {
			t.Errorf("CredentialState(%d).String() = %q, want %q", int(state), got, want)
		}
	}
}

// ReportRelayed counts by credential and direction, and by customIdentifier beyond the
// credential's life in the table.
func TestReportRelayed(t *testing.T) {
	srv := turntest.NewServer(turntest.WithMaxCredentials(3))
	t.Cleanup(srv.Close)
	key := newKey(t, srv)
	a, _ := mintOne(t, srv, key, time.Hour, "user-42")
	b, _ := mintOne(t, srv, key, time.Hour, "user-42")
	c, _ := mintOne(t, srv, key, time.Hour, "")

	srv.ReportRelayed(turntest.RelayedTraffic{Username: a, Egress: 100, Ingress: 10})
	srv.ReportRelayed(turntest.RelayedTraffic{Username: a, Egress: 1})
	srv.ReportRelayed(turntest.RelayedTraffic{Username: b, Ingress: 7})
	srv.ReportRelayed(turntest.RelayedTraffic{Username: c, Egress: 5, Ingress: -50}) // a negative count is dropped
	srv.ReportRelayed(turntest.RelayedTraffic{Username: "never-minted", Egress: 1000})

	if got, want := srv.Relayed(a), (turntest.RelayedTraffic{Username: a, Egress: 101, Ingress: 10}); got != want {
		t.Errorf("Relayed(a) = %+v, want %+v", got, want)
	}
	for name, want := range map[string]int64{a: 111, b: 7, c: 5, "never-minted": 0} {
		if got := srv.RelayedBytes(name); got != want {
			t.Errorf("RelayedBytes(%s) = %d, want %d", name, got, want)
		}
	}
	if got := srv.RelayedBytesByIdentifier("user-42"); got != 118 {
		t.Errorf("RelayedBytesByIdentifier = %d, want 118", got)
	}
	// Evicted, a credential's own count is gone; its identifier's stays.
	for range 3 {
		mintOne(t, srv, key, time.Hour, "")
	}
	if got := srv.RelayedBytes(a); got != 0 {
		t.Errorf("RelayedBytes of an evicted credential = %d, want 0", got)
	}
	srv.ReportRelayed(turntest.RelayedTraffic{Username: a, Egress: 1000})
	if got := srv.RelayedBytesByIdentifier("user-42"); got != 118 {
		t.Errorf("RelayedBytesByIdentifier after eviction = %d, want 118", got)
	}
}

func TestSetICEURLs(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key := newKey(t, srv)
	answer := func() []turn.ICEServer {
		t.Helper()
		ice, err := srv.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return ice.Servers
	}
	cloudflare := answer()
	if len(cloudflare) != 2 || cloudflare[0].URLs[0] != "stun:stun.cloudflare.com:3478" {
		t.Fatalf("default answer: %v", cloudflare)
	}

	if err := srv.SetICEURLs("turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.1:3478", "turns:127.0.0.1:5349?transport=tcp"); err != nil {
		t.Fatal(err)
	}
	got := answer()
	if len(got) != 2 || fmt.Sprint(got[0].URLs) != "[stun:127.0.0.1:3478]" || got[0].Username != "" ||
		fmt.Sprint(got[1].URLs) != "[turn:127.0.0.1:3478?transport=udp turns:127.0.0.1:5349?transport=tcp]" || got[1].Username == "" || got[1].Credential.IsZero() {
		t.Errorf("answer after SetICEURLs: %+v", got)
	}
	if srv.LookupCredential(got[1].Username).Password.Reveal() != got[1].Credential.Reveal() {
		t.Error("the answer's credential is not the one the fake holds")
	}
	// TURN only: the answer has one entry, with the credential.
	if err := srv.SetICEURLs("turn:127.0.0.1:3478"); err != nil {
		t.Fatal(err)
	}
	if got := answer(); len(got) != 1 || got[0].Username == "" {
		t.Errorf("TURN-only answer: %+v", got)
	}

	for _, tc := range []struct {
		urls []string
		want string
	}{
		{[]string{"stun:127.0.0.1:3478"}, "no turn: or turns: URL"},
		{[]string{"http://127.0.0.1"}, "scheme must be stun, turn or turns"},
		{[]string{"turn:"}, "want scheme:host:port"},
		{[]string{"turn:127.0.0.1:3478 x"}, "no spaces"},
		{make([]string, 33), "more than 32"},
	} {
		if err := srv.SetICEURLs(tc.urls...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetICEURLs(%q) = %v, want an error saying %q", tc.urls, err, tc.want)
		}
	}
	// A refused call leaves the answer as it was; no URLs at all go back to Cloudflare's.
	if got := answer(); len(got) != 1 {
		t.Errorf("answer after refused calls: %+v", got)
	}
	if err := srv.SetICEURLs(); err != nil {
		t.Fatal(err)
	}
	if got := answer(); fmt.Sprint(got) != fmt.Sprint(cloudflare) {
		t.Errorf("answer after SetICEURLs(): %v, want Cloudflare's %v", got, cloudflare)
	}
}

// The generated server interface is implemented off Fake's exported API: its methods, with their
// (w, r, ...) signatures, are the spec's operations, not calls for a test to make.
func TestFakeHidesTheGeneratedInterface(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[*turntest.Fake](), reflect.TypeFor[*turntest.Server]()} {
		for m := range typ.Methods() {
			if in := m.Type.NumIn(); in > 1 && m.Type.In(1).String() == "http.ResponseWriter" {
				t.Errorf("%v exports %s, a handler of the generated interface", typ, m.Name)
			}
		}
		for _, name := range []string{"ListTurnKeys", "CreateTurnKey", "GetTurnKey", "UpdateTurnKey", "DeleteTurnKey", "GenerateIceServers", "RevokeIceCredential"} {
			if _, ok := typ.MethodByName(name); ok {
				t.Errorf("%v exports %s", typ, name)
			}
		}
	}
}
