package iceserve_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// A credential for a self-hosted coturn in use-auth-secret mode, minted locally: the username
// carries the expiry and a pseudonym of the identity, the password is the HMAC coturn checks.
func ExampleCoturn() {
	c, err := iceserve.NewCoturn(iceserve.CoturnConfig{
		Secrets: []turn.Secret{turn.NewSecret("coturn-static-auth-secret")}, // newest first
		URLs:    []string{"turn:turn.example.org:3478?transport=udp"},
		TTL:     time.Hour,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	server, expires := c.Mint("@alice:example.org", time.Unix(1_900_000_000, 0))
	fmt.Println(server.URLs[0])
	fmt.Println(server.Username, server.Credential.Reveal())
	fmt.Println(expires.Unix())
	// Output:
	// turn:turn.example.org:3478?transport=udp
	// 1900003600:fZNYB6ANnLx8IwwD 1w20LQ7YhiBc2oo3GW1klBr5NMc=
	// 1900003600
}

// What Janus sends to its turn_rest_api, and what serve-ice reads from it.
func ExampleParseTURNRESTRequest() {
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret("0123456789abcdef0123456789abcdef"))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := httptest.NewRequest("GET", "/turn-rest?service=turn&api=0123456789abcdef0123456789abcdef&key=0123456789abcdef0123456789abcdef&username=alice", nil)
	username, refusal := iceserve.ParseTURNRESTRequest(r, keys, 256)
	fmt.Printf("username %q, refused: %v\n", username, refusal != nil)

	r = httptest.NewRequest("POST", "/turn-rest", strings.NewReader("service=turn&key=wrong"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, refusal = iceserve.ParseTURNRESTRequest(r, keys, 256)
	fmt.Println(refusal.Status, refusal.Message)
	// Output:
	// username "alice", refused: false
	// 401 wrong API key
}
