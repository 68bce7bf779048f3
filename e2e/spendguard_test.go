package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/relaytest"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// monthClock is a clock shared by the fake, the handler and the guard.
type monthClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *monthClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *monthClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// The spend guard end to end, through the real relay: bytes relayed through the fake with the handler's credentials push
// the month's egress over a small budget, the next answers carry STUN only, and when the month
// rolls over TURN comes back.
func TestHandlerWithholdsTURNOverBudget(t *testing.T) {
	clk := &monthClock{now: time.Now().UTC()}
	srv := turntest.NewServer(turntest.WithClock(clk.Now))
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "guarded"})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := turnusage.NewClient(srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	guard, err := turnusage.NewGuard(turnusage.GuardConfig{Client: uc, KeyID: key.ID, Budget: 2000, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: srv.Client(), KeyID: key.ID, KeySecret: key.Secret, IdentityHeader: "X-User",
		WithholdTURN: func(string) bool { return guard.OverBudget() }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	get := func(user string) (turnURLs []string, username, credential string, stun int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL, nil)
		req.Header.Set("X-User", user)
		res, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var ans struct {
			IceServers []struct {
				URLs       []string `json:"urls"`
				Username   string   `json:"username"`
				Credential string   `json:"credential"`
			} `json:"iceServers"`
			ExpiresAt int64 `json:"expiresAt"`
		}
		if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != 200 || ans.ExpiresAt == 0 {
			t.Fatalf("GET: %d %v %+v", res.StatusCode, err, ans)
		}
		for _, s := range ans.IceServers {
			for _, u := range s.URLs {
				if strings.HasPrefix(u, "turn") {
					turnURLs = append(turnURLs, u)
				} else {
					stun++
				}
			}
			if s.Username != "" {
				username, credential = s.Username, s.Credential
			}
		}
		return
	}

	urls, user, cred, _ := get("alice")
	if len(urls) == 0 || user == "" {
		t.Fatalf("under budget: no TURN in the answer")
	}
	relaytest.Exchange(t, relay.TCPAddr, user, cred, 5, 300, 2) // 1,500 bytes out, 3,000 back: egress over the budget
	if err := guard.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !guard.OverBudget() {
		t.Fatalf("guard: %+v, want over budget after the relayed bytes", guard.Stats())
	}
	mints := srv.Requests()["generateIceServers"]
	for _, who := range []string{"alice", "bob"} {
		urls, user, cred, stun := get(who)
		if len(urls) != 0 || user != "" || cred != "" || stun == 0 {
			t.Errorf("%s over budget: TURN %v, username %q, %d STUN URLs: want STUN only", who, urls, user, stun)
		}
	}
	if srv.Requests()["generateIceServers"] != mints || h.Stats().STUNOnly != 2 {
		t.Errorf("over budget the handler minted (%d → %d) or did not count STUN-only answers (%d)", mints, srv.Requests()["generateIceServers"], h.Stats().STUNOnly)
	}

	// The month rolls over: TURN is back at once, before the next poll.
	now := clk.Now()
	clk.Set(time.Date(now.Year(), now.Month()+1, 1, 0, 0, 30, 0, time.UTC))
	if urls, user, _, _ := get("bob"); len(urls) == 0 || user == "" {
		t.Errorf("next month: no TURN in the answer")
	}
	if err := guard.Poll(ctx); err != nil || guard.OverBudget() {
		t.Errorf("next month's poll: %v, %+v", err, guard.Stats())
	}
}
