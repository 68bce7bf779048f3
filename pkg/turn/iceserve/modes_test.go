package iceserve_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/coturnserver"
	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// coturnModes is a handler on the fake (with its relay) with a real coturn as second provider.
type coturnModes struct {
	*modesEnv
	coturn *coturnserver.Server
	clock  *clock
	logs   *syncbuf.Buffer
}

func coturnSetup(t *testing.T, mode iceserve.CoturnMode, cfg iceserve.Config) *coturnModes {
	t.Helper()
	srv := coturnserver.Start(t, coturnserver.Options{Secrets: []string{newSecret}})
	clk := &clock{now: time.Now()}
	logs := &syncbuf.Buffer{}
	cfg.TTL = time.Hour
	cfg.Coturn = coturnProvider(t, srv.URLs(), newSecret)
	cfg.CoturnMode = mode
	cfg.IdentityHeader = "X-User"
	cfg.Now = clk.Now
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &coturnModes{modesEnv: modesSetup(t, cfg), coturn: srv, clock: clk, logs: logs}
}

func (e *coturnModes) servers(t *testing.T, user string) (int, []turn.ICEServer) {
	t.Helper()
	status, _, body := e.do(t, "GET", "/", nil, http.Header{"X-User": {user}})
	if status != http.StatusOK {
		return status, nil
	}
	servers, err := turncheck.ParseICEServers(body)
	if err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return status, servers
}

func (e *coturnModes) isCoturn(s turn.ICEServer) bool {
	return len(s.URLs) > 0 && s.URLs[0] == e.coturn.URLs()[0]
}

// In merge mode every answer lists Cloudflare's (the fake's) servers and coturn's, each with a
// credential that relays, and the merged answer is cached as one.
func TestCoturnMerge(t *testing.T) {
	e := coturnSetup(t, iceserve.CoturnMerge, iceserve.Config{})
	_, servers := e.servers(t, "alice")
	var coturn, cloudflare int
	for _, s := range servers {
		switch {
		case e.isCoturn(s):
			coturn++
			if strings.Contains(s.Username, "alice") {
				t.Errorf("coturn username %q holds the identity", s.Username)
			}
		case s.Username != "":
			cloudflare++
		}
	}
	if coturn != 1 || cloudflare != 1 {
		t.Fatalf("%d coturn and %d Cloudflare entries with credentials, want 1 each: %+v", coturn, cloudflare, servers)
	}
	report, err := turncheck.Check(context.Background(), servers, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range report.Results {
		if strings.HasPrefix(r.URL, "turn") && r.Status != turncheck.StatusOK {
			t.Errorf("%s: %s (%s)", r.URL, r.Status, r.Detail)
		}
	}
	_, again := e.servers(t, "alice")
	if len(again) != len(servers) || again[len(again)-1].Username != servers[len(servers)-1].Username {
		t.Error("the second answer is not the cached merged one")
	}
	if n := e.mints(); n != 1 {
		t.Errorf("%d mints, want 1", n)
	}
}

// In fallback mode coturn answers alone while Cloudflare cannot be minted from — upstream
// failing, breaker open, mint budget spent — and Cloudflare answers again once it recovers;
// both changes are logged once, and every fallback answer is counted.
func TestCoturnFallback(t *testing.T) {
	e := coturnSetup(t, iceserve.CoturnFallback, iceserve.Config{MintsPerSecond: 0.01, MintBurst: 2})
	_, servers := e.servers(t, "alice")
	for _, s := range servers {
		if e.isCoturn(s) {
			t.Fatalf("coturn listed while Cloudflare works: %+v", servers)
		}
	}
	// The upstream fails: coturn alone, relaying for real.
	if err := e.fake.Fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	status, servers := e.servers(t, "bob")
	if status != 200 || len(servers) != 1 || !e.isCoturn(servers[0]) {
		t.Fatalf("upstream failing: %d %+v, want coturn's server alone", status, servers)
	}
	report, err := turncheck.Check(context.Background(), servers, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil || !report.TURNWorks() {
		t.Fatalf("the fallback credential does not relay on coturn: %v %+v", err, report.Results)
	}
	// The breaker is open: no upstream call, coturn again.
	mints := e.mints()
	if _, servers := e.servers(t, "carol"); len(servers) != 1 || !e.isCoturn(servers[0]) || e.mints() != mints {
		t.Errorf("breaker open: %+v after %d mints (was %d), want coturn and no upstream call", servers, e.mints(), mints)
	}
	// Recovered: past the backoff, Cloudflare answers (and its credential is cached).
	e.clock.step(2 * time.Minute)
	if _, servers := e.servers(t, "dave"); len(servers) == 0 || e.isCoturn(servers[len(servers)-1]) {
		t.Errorf("after recovery: %+v, want Cloudflare's servers", servers)
	}
	// The budget (burst 2, one mint per 100 s) is spent: coturn.
	if _, servers := e.servers(t, "erin"); len(servers) != 1 || !e.isCoturn(servers[0]) {
		t.Errorf("budget spent: %+v, want coturn's server alone", servers)
	}
	if n := e.handler.Stats().CoturnFallbacks; n != 3 {
		t.Errorf("CoturnFallbacks = %d, want 3", n)
	}
	logs := e.logs.String()
	if strings.Count(logs, "answering coturn's servers") != 2 || strings.Count(logs, "coturn fallback over") != 1 {
		t.Errorf("want two fallback spells logged and one recovery:\n%s", logs)
	}
	if strings.Contains(logs, newSecret) || strings.Contains(logs, "bob") {
		t.Error("a secret or an identity reached the log")
	}
	// A TURN REST caller gets coturn's credential while falling back, in its one-credential shape.
	if err := e.fake.Fake.InjectFault(turntest.Fault{Operation: turntest.OpGenerateIceServers, Status: 503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	e.clock.step(10 * time.Minute)
	status, _, body := e.do(t, "GET", "/turn-rest", restQuery("janus-1"), nil)
	if a := decodeAnswer(t, body); status != 200 || strings.Join(a.URIs, " ") != strings.Join(e.coturn.URLs(), " ") {
		t.Errorf("TURN REST while falling back: %d %s", status, body)
	}
}

// A merge whose coturn URLs overlap Cloudflare's answer is refused at the start-up check, and a
// coturn TTL below the handler's is refused at once.
func TestCoturnMisconfiguration(t *testing.T) {
	fake := turntest.NewServer()
	defer fake.Close()
	relay, err := turnrelay.Attach(fake)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "overlap"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := fake.Client().GenerateICEServers(context.Background(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var cloudflareTURN string
	for _, s := range ice.Servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") && cloudflareTURN == "" {
				cloudflareTURN = u
			}
		}
	}
	cfg := iceserve.Config{Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour,
		Coturn: coturnProvider(t, []string{cloudflareTURN}, newSecret)}
	h, err := iceserve.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CheckUpstream(context.Background()); err == nil || !strings.Contains(err.Error(), "is also in Cloudflare's answer") {
		t.Errorf("CheckUpstream with overlapping URLs: %v", err)
	}
	cfg.TTL = 2 * time.Hour
	if _, err := iceserve.NewHandler(cfg); !errors.Is(err, turn.ErrInvalidArgument) || !strings.Contains(err.Error(), "below TTL") {
		t.Errorf("coturn TTL below the handler's: %v", err)
	}
}
