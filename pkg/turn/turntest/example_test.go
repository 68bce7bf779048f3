package turntest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// A test starts the fake, points the code under test at it with a ready client (or with
// Server.ClientOptions, or the URLs for code that takes base URLs), and injects faults to see how
// that code copes.
func Example() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	key, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "test"})
	if err != nil {
		log.Fatal(err)
	}
	ice, err := client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	// The answer carries Cloudflare's URLs (package turnrelay attaches a relay that it points at).
	for _, s := range ice.Servers {
		fmt.Println(s.URLs[0], len(s.URLs), s.Username != "")
	}

	// The next create fails as Cloudflare does when the token lacks permission.
	if err := srv.InjectFault(turntest.Fault{Operation: turntest.OpCreateTurnKey, Status: http.StatusForbidden}); err != nil {
		log.Fatal(err)
	}
	_, err = client.CreateKey(ctx, turn.CreateKeyParams{Name: "second"})
	fmt.Println(errors.Is(err, turn.ErrForbidden), srv.Requests()[string(turntest.OpCreateTurnKey)])
	// Output:
	// stun:stun.cloudflare.com:3478 1 false
	// turn:turn.cloudflare.com:3478?transport=udp 6 true
	// true 2
}
