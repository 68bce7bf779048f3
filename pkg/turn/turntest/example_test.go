package turntest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v5"

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
	// The answer points at the fake's own TURN relay, on loopback.
	for _, s := range ice.Servers {
		for _, u := range s.URLs {
			fmt.Println(strings.Replace(u, srv.Relay.UDPAddr, "RELAY", 1), s.Username != "")
		}
	}

	// The next create fails as Cloudflare does when the token lacks permission.
	if err := srv.InjectFault(turntest.Fault{Operation: turntest.OpCreateTurnKey, Status: http.StatusForbidden}); err != nil {
		log.Fatal(err)
	}
	_, err = client.CreateKey(ctx, turn.CreateKeyParams{Name: "second"})
	fmt.Println(errors.Is(err, turn.ErrForbidden), srv.Requests()[string(turntest.OpCreateTurnKey)])
	// Output:
	// stun:RELAY false
	// turn:RELAY?transport=udp true
	// turn:RELAY?transport=tcp true
	// true 2
}

// The relay accepts exactly the credentials the fake minted, and stops those revoked.
func Example_relay() {
	srv := turntest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		log.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	username, password := ice.Servers[1].Username, ice.Servers[1].Credential.Reveal()

	allocate := func() error {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer conn.Close()
		c, err := pionturn.NewClient(&pionturn.ClientConfig{
			TURNServerAddr: srv.Relay.UDPAddr, Username: username, Password: password, Conn: conn,
		})
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Listen(); err != nil {
			return err
		}
		relayed, err := c.Allocate()
		if err != nil {
			return err
		}
		return relayed.Close()
	}
	fmt.Println("live:", allocate())
	err = srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: username})
	if err != nil {
		log.Fatal(err)
	}
	err = allocate()
	fmt.Println("revoked refused:", err != nil && strings.Contains(err.Error(), "401"))
	// Output:
	// live: <nil>
	// revoked refused: true
}
