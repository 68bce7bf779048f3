package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// With the key's egress over --egress-budget, serve-ice answers STUN only, and says so on /readyz
// and /metrics.
func TestServeICEEgressBudget(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	srv.RecordUsage(time.Now(), key.ID, "someone", "", 2_000_000, 0)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	e := startServeICEOn(t, srv, key, env, "--egress-budget", "1MB", "--log-format", "json")

	code, body := e.get(t, "/", "alice")
	var ans struct {
		IceServers []struct {
			URLs     []string `json:"urls"`
			Username string   `json:"username"`
		} `json:"iceServers"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || code != 200 || len(ans.IceServers) == 0 {
		t.Fatalf("GET /: %d %v %s", code, err, body)
	}
	for _, s := range ans.IceServers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn") || s.Username != "" {
				t.Errorf("over budget the answer has TURN: %s", body)
			}
		}
	}
	if code, body := e.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "spend guard: over-budget, 2.00 MB of 1.00 MB this month, answering STUN only") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	_, metrics := e.get(t, "/metrics", "")
	for _, want := range []string{`cfturn_spend_guard_state{state="over-budget"} 1`, "cfturn_turn_egress_month_bytes 2e+06", "cfturn_ice_stun_only_total 1", "cfturn_spend_guard_poll_failures_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(e.stderr.String(), "over the monthly budget") {
		t.Errorf("the over-budget state was not logged:\n%s", e.stderr)
	}
}

// While the analytics API fails serve-ice still serves TURN: the guard's failure is logged and
// shown on /readyz, never a reason to stop answering.
func TestServeICEEgressBudgetAnalyticsDown(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Status: 503, Count: 1000}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	e := startServeICEOn(t, srv, key, env, "--egress-budget", "1MB")
	if code, body := e.get(t, "/", "alice"); code != 200 || !strings.Contains(body, "turn:") {
		t.Errorf("GET /: %d %s, want TURN", code, body)
	}
	if code, body := e.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "spend guard: unknown") || !strings.Contains(body, "poll failed") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if !strings.Contains(e.stderr.String(), "reading usage failed") {
		t.Errorf("the failure was not logged:\n%s", e.stderr)
	}
}

// A token the analytics API refuses is a mistake to fix at once: serve-ice does not start with a
// blind guard, and says why without the token.
func TestServeICEEgressBudgetRefusedToken(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CFTURN_KEY_SECRET": key.Secret.Reveal(), "CLOUDFLARE_API_TOKEN": "not-the-token-not-the-token-not", "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	r := cfturn(t, srv, env, "serve-ice", "--addr", "127.0.0.1:0", "--key-id", key.ID, "--egress-budget", "1MB")
	if r.code == 0 || !strings.Contains(r.stderr, "refused the token") || strings.Contains(r.stderr+r.stdout, "not-the-token") {
		t.Errorf("exit %d, stderr %q: want a failure naming the refused token, without it", r.code, r.stderr)
	}
}

func TestServeICEEgressBudgetFlags(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--egress-budget", "lots"}, `--egress-budget "lots"`},
		{[]string{"--egress-budget", "1GB", "--egress-poll", "10s"}, "--egress-poll 10s"},
	} {
		r := cfturn(t, srv, map[string]string{"CFTURN_KEY_SECRET": strings.Repeat("a", 64)}, append([]string{"serve-ice", "--key-id", strings.Repeat("b", 32), "--addr", "127.0.0.1:0"}, tc.args...)...)
		r.check(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
}

// After a key rotation the guard counts both keys' egress: 600 kB on the old key and 600 kB on the
// new one are over a 1 MB budget, though neither key alone is.
func TestServeICEEgressBudgetFollowsRotation(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	e := startRotationOn(t, srv, env, "--key-poll", "20ms", "--egress-budget", "1MB")
	srv.RecordUsage(time.Now().Add(-time.Minute), e.new.ID, "someone", "", 600_000, 0)
	if code, body := e.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "spend guard: ok") {
		t.Fatalf("/readyz before the switch: %d %q", code, body)
	}
	srv.RecordUsage(time.Now().Add(-time.Minute), e.old.ID, "someone", "", 600_000, 0)

	writeFile(t, e.secretFn, e.new.Secret.Reveal())
	writeFile(t, e.idFile, e.new.ID)
	e.waitLog(t, "switched key", 1)
	e.waitLog(t, "over the monthly budget", 1)
	if code, body := e.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, "spend guard: over-budget, 1.20 MB of 1.00 MB this month") {
		t.Errorf("/readyz after the switch: %d %q", code, body)
	}
	if code, body := e.get(t, "/", "alice"); code != 200 || strings.Contains(body, "turn:") {
		t.Errorf("over budget after the switch: %d %s, want STUN only", code, body)
	}
}
