package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/janusserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// The harness itself, with a stand-in TURN REST server that mints from the fake: Janus asks it
// (with the method configured, service=turn and the key) when it sets up ICE, and gathers relay
// candidates on the fake's relay with the answer.
func TestJanusHarness(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			fake := turntest.NewServer()
			defer fake.Close()
			relay, err := turnrelay.Attach(fake)
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			ctx := context.Background()
			key, err := fake.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "janus"})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var got []url.Values
			var methods []string
			rest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				mu.Lock()
				got, methods = append(got, r.Form), append(methods, r.Method)
				mu.Unlock()
				ice, err := fake.Client().GenerateICEServers(r.Context(), turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
				if err != nil {
					http.Error(w, err.Error(), 502)
					return
				}
				var answer struct {
					Username string   `json:"username"`
					Password string   `json:"password"`
					TTL      int      `json:"ttl"`
					URIs     []string `json:"uris"`
				}
				for _, s := range ice.Servers {
					if s.Username != "" {
						answer.Username, answer.Password, answer.TTL = s.Username, s.Credential.Reveal(), 3600
						for _, u := range s.URLs {
							if strings.HasPrefix(u, "turn:") {
								answer.URIs = append(answer.URIs, u)
							}
						}
					}
				}
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(answer)
			}))
			defer rest.Close()

			j := janusserver.Start(t, janusserver.Options{TURNRESTAPI: rest.URL + "/turn-rest", TURNRESTKey: "k3y", Method: method})
			sdp := janusEchotest(t, j, "alice")
			relays := relayCandidates(sdp)
			if len(relays) == 0 {
				t.Fatalf("no relay candidate in Janus's answer:\n%s\njanus log:\n%s", sdp, j.LogTail(40))
			}
			relayHost, _, _ := strings.Cut(relay.UDPAddr, ":")
			for _, c := range relays {
				if !strings.HasPrefix(c, relayHost+" ") {
					t.Errorf("relay candidate %q is not on the fake's relay %s", c, relay.UDPAddr)
				}
			}
			if n := relay.Allocations(); n == 0 {
				t.Error("the fake's relay holds no allocation")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) == 0 {
				t.Fatal("Janus never asked the TURN REST API")
			}
			t.Logf("Janus asked %s %v; relay candidates %v", methods[0], got[0], relays)
			if methods[0] != method || got[0].Get("service") != "turn" || got[0].Get("key") != "k3y" || got[0].Get("api") != "k3y" {
				t.Errorf("Janus asked %s %v", methods[0], got[0])
			}
		})
	}
}
