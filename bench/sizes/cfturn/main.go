// Command cfturn creates a TURN key with pkg/turn.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cfturn/cfturn/pkg/turn"
)

func main() {
	client, err := turn.NewClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	key, err := client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "size"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(key.ID)
}
