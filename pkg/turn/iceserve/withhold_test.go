package iceserve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// While WithholdTURN says so, answers carry the STUN servers only (the last mint's, or
// Cloudflare's before any), nothing is minted, and expiresAt is soon; afterwards TURN is back.
// The end-to-end test with a spend guard and the real relay is in e2e/spendguard_test.go.
func TestHandlerWithholdTURN(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "withhold"})
	if err != nil {
		t.Fatal(err)
	}
	var withhold atomic.Bool
	withhold.Store(true)
	h, err := iceserve.NewHandler(iceserve.Config{Client: srv.Client(), KeyID: key.ID, KeySecret: key.Secret, IdentityHeader: "X-User",
		WithholdTURN: func(string) bool { return withhold.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	get := func(user string) (urls []string, creds int, expires time.Time) {
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
		if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET: %d %v", res.StatusCode, err)
		}
		for _, s := range ans.IceServers {
			urls = append(urls, s.URLs...)
			if s.Username != "" || s.Credential != "" {
				creds++
			}
		}
		return urls, creds, time.Unix(ans.ExpiresAt, 0)
	}
	hasTURN := func(urls []string) bool {
		for _, u := range urls {
			if strings.HasPrefix(u, "turn") {
				return true
			}
		}
		return false
	}

	urls, creds, exp := get("alice") // before any mint
	if hasTURN(urls) || creds != 0 || len(urls) != 1 || urls[0] != "stun:stun.cloudflare.com:3478" || time.Until(exp) > 10*time.Minute {
		t.Errorf("withheld before any mint: %v, %d credentials, expires %v", urls, creds, exp)
	}
	withhold.Store(false)
	urls, creds, _ = get("alice")
	if !hasTURN(urls) || creds != 1 {
		t.Fatalf("not withheld: %v, %d credentials", urls, creds)
	}
	withhold.Store(true)
	mints := srv.Requests()[string(turntest.OpGenerateIceServers)]
	urls, creds, _ = get("bob")
	if hasTURN(urls) || creds != 0 || len(urls) == 0 {
		t.Errorf("withheld after a mint: %v, %d credentials, want that mint's STUN URLs only", urls, creds)
	}
	for _, u := range urls {
		if strings.HasSuffix(u, ":53") {
			t.Errorf("a port-53 URL in the STUN-only answer: %s", u)
		}
	}
	if srv.Requests()[string(turntest.OpGenerateIceServers)] != mints || h.Stats().STUNOnly != 2 {
		t.Errorf("withheld answers minted (%d → %d) or were not counted (%d)", mints, srv.Requests()[string(turntest.OpGenerateIceServers)], h.Stats().STUNOnly)
	}
}

// With coturn configured, a withheld answer is coturn's servers alone: TURN that Cloudflare does
// not bill, still nothing minted upstream.
func TestHandlerWithholdTURNAnswersCoturn(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	key, err := srv.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "withhold"})
	if err != nil {
		t.Fatal(err)
	}
	co, err := iceserve.NewCoturn(iceserve.CoturnConfig{Secrets: []turn.Secret{turn.NewSecret("coturn-shared-secret")},
		URLs: []string{"turn:turn.example.org:3478?transport=udp"}, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: srv.Client(), KeyID: key.ID, KeySecret: key.Secret, IdentityHeader: "X-User",
		Coturn: co, WithholdTURN: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-User", "alice")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "turn:turn.example.org:3478") || strings.Contains(body, "cloudflare") || !strings.Contains(body, `"credential"`) {
		t.Errorf("%d %s: want coturn's server alone", rec.Code, body)
	}
	if srv.Requests()[string(turntest.OpGenerateIceServers)] != 0 || h.Stats().STUNOnly != 1 {
		t.Errorf("minted %d times, %d withheld answers counted", srv.Requests()[string(turntest.OpGenerateIceServers)], h.Stats().STUNOnly)
	}
}
