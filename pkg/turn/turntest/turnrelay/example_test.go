package turnrelay_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// A test that wants real TURN starts the fake, attaches a relay to it, and gives its peers the
// fake's answer as is: it points at the relay, which accepts exactly the credentials the fake
// minted and stops those revoked.
func Example() {
	srv := turntest.NewServer()
	defer srv.Close()
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		log.Fatal(err)
	}
	defer relay.Close()

	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		log.Fatal(err)
	}
	ice, err := srv.Client().GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	at := strings.NewReplacer(relay.UDPAddr, "RELAY", relay.TCPAddr, "RELAY")
	for _, s := range ice.Servers {
		for _, u := range s.URLs {
			fmt.Println(at.Replace(u), s.Username != "")
		}
	}
	username, password := ice.Servers[1].Username, ice.Servers[1].Credential.Reveal()

	allocate := func() error {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer conn.Close()
		c, err := pionturn.NewClient(&pionturn.ClientConfig{
			TURNServerAddr: relay.UDPAddr, Username: username, Password: password, Conn: conn,
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
	// stun:RELAY false
	// turn:RELAY?transport=udp true
	// turn:RELAY?transport=tcp true
	// live: <nil>
	// revoked refused: true
}
