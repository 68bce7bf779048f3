// Command sdk creates a TURN key with the official Cloudflare Go SDK.
package main

import (
	"context"
	"fmt"
	"os"

	cloudflare "github.com/cloudflare/cloudflare-go/v7"
	"github.com/cloudflare/cloudflare-go/v7/calls"
)

func main() {
	client := cloudflare.NewClient() // reads CLOUDFLARE_API_TOKEN
	key, err := client.Calls.TURN.New(context.Background(), calls.TURNNewParams{
		AccountID: cloudflare.F(os.Getenv("CLOUDFLARE_ACCOUNT_ID")),
		Name:      cloudflare.F("size"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(key.UID)
}
