package turncheck_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turncheck"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// Check the ICE servers minted by the fake, whose answers point at the TURN relay attached to it.
// Against Cloudflare, mint with a turn.Client of your account instead; nothing else changes.
func ExampleCheck() {
	srv := turntest.NewServer()
	defer srv.Close()
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer relay.Close()
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: 10 * time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	report, err := turncheck.Check(ctx, ice.Servers, turncheck.Config{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range report.Results {
		fmt.Println(r.Transport, r.Status, r.RelayedAddress != "" || r.MappedAddress != "")
	}
	fmt.Println("TURN works:", report.TURNWorks())
	// Output:
	// udp ok true
	// udp ok true
	// tcp ok true
	// TURN works: true
}
