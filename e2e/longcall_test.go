package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// longCallTTL is the life of the call's credentials; longCallLength how long it runs.
const (
	longCallTTL    = 20 * time.Second
	longCallLength = 90 * time.Second
)

// TestLongCall runs a call of two relay-only peers in headless Chromium, one data-channel message
// a second for 90 s, on credentials that live 20 s, through the fake's relay, which stops relaying
// for an expired credential as Cloudflare does. With cfturn.js every message arrives, and ICE
// stays connected through every restart (checkMessages); without it the channel dies at the first
// expiry. The two cases run in parallel.
func TestLongCall(t *testing.T) {
	chromium := needChromium(t)
	for _, tc := range []struct {
		name   string
		helper bool
	}{{"with cfturn.js", true}, {"without", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := fakeWithRelay(t)
			key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "long-call"})
			if err != nil {
				t.Fatal(err)
			}
			ep := &troubledEndpoint{client: fake.Client(), key: key, ttl: longCallTTL}
			base := callPage(t, ep)
			browser := startBrowser(t, chromium)
			url := base + "/call/"
			if !tc.helper {
				url += "?helper=0"
			}
			tab := callTab(t, browser, url)
			s := waitCall(t, tab, 30*time.Second, "the data channel to open", func(s callState) bool { return s.Opened })

			if !tc.helper {
				// The whole call's length, as the other case runs (its end must not load the machine
				// while the other still measures gaps): the relay stopped at the expiry, and so did the
				// messages, for good.
				s = waitCall(t, tab, longCallLength+30*time.Second, "the call's length", func(s callState) bool {
					return s.Sent >= int(longCallLength/time.Second)
				})
				if len(s.Received) < 5 {
					t.Fatalf("only %d messages arrived before the expiry: the call never worked", len(s.Received))
				}
				last := s.Received[len(s.Received)-1].T
				if last > s.ExpiresAtMs+2000 {
					t.Errorf("a message arrived %.1f s after the credential expired: the relay went on relaying", (last-s.ExpiresAtMs)/1000)
				}
				if s.Sent-len(s.Received) < 5 {
					t.Errorf("%d sent, %d received: the channel did not die at expiry", s.Sent, len(s.Received))
				}
				t.Logf("without the helper: %d messages arrived, the last %.1f s before expiry; %d sent", len(s.Received), (s.ExpiresAtMs-last)/1000, s.Sent)
				return
			}

			s = waitCall(t, tab, longCallLength+30*time.Second, "90 messages", func(s callState) bool {
				return s.Sent >= int(longCallLength/time.Second)
			})
			s = waitDelivered(t, tab)
			checkMessages(t, tab, s, maxStall)
			defer func() {
				if t.Failed() {
					t.Logf("page log:\n%s", pageLog(tab))
				}
			}()
			for _, peer := range []string{"A", "B"} {
				// 90 s on 20 s credentials refreshed at 60 % of their life: a restart every 12 s.
				if n := s.count(peer, "restarted", 0); n < 5 {
					t.Errorf("peer %s restarted %d times in %v, want at least 5", peer, n, longCallLength)
				}
			}
			for _, e := range s.Events {
				if e.Type == "error" || e.Type == "retry" {
					t.Errorf("%s: %+v", e.Type, e)
				}
			}
			_, usernames := ep.snapshot()
			t.Logf("with the helper: %d messages, %d credentials, %d restarts", len(s.Received), len(usernames), s.count("", "restarted", 0))
		})
	}
}
