package iceserve_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Switch the credential server to a new TURN key without a restart, as after
// `cfturn keys rotate`: a bad key is refused and the old one keeps serving.
func ExampleRotator() {
	fake := turntest.NewServer() // stands in for Cloudflare
	defer fake.Close()
	ctx := context.Background()
	client := fake.Client()
	oldKey, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "prod"})
	if err != nil {
		log.Fatal(err)
	}
	rot, err := iceserve.NewRotator(iceserve.Config{
		Client: client, KeyID: oldKey.ID, KeySecret: oldKey.Secret, TTL: 4 * time.Hour, IdentityHeader: "X-User",
	})
	if err != nil {
		log.Fatal(err)
	}
	// http.Handle("/ice", rot) serves it.

	newKey, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "prod (rotated)"})
	if err != nil {
		log.Fatal(err)
	}
	err = rot.Rotate(ctx, iceserve.RotateParams{KeyID: newKey.ID, KeySecret: oldKey.Secret}) // wrong secret
	fmt.Println("refused:", err != nil, "still on the old key:", rot.KeyID() == oldKey.ID)
	err = rot.Rotate(ctx, iceserve.RotateParams{KeyID: newKey.ID, KeySecret: newKey.Secret})
	fmt.Println("switched:", err == nil, "on the new key:", rot.KeyID() == newKey.ID)
	// Output:
	// refused: true still on the old key: true
	// switched: true on the new key: true
}
