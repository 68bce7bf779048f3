package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
)

// Several replicas of a credential endpoint share one view through Redis: each runs this with
// the same Redis and TURN key. It needs a Redis, so it is compiled but not run; the tests run
// the same steps against a real redis-server, and ExampleStore_Check runs anywhere.
func Example() {
	ctx := context.Background()
	rdb, err := redisstore.NewClient(os.Getenv("CFTURN_REDIS_URL")) // redis://user:password@host:6379/0
	if err != nil {
		log.Fatal(err)
	}
	defer rdb.Close()
	client, err := turn.NewClient(turn.WithAPIToken(os.Getenv("CLOUDFLARE_API_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	keyID, secret := os.Getenv("CFTURN_KEY_ID"), turn.NewSecret(os.Getenv("CFTURN_KEY_SECRET"))
	store, err := redisstore.New(rdb, redisstore.Options{KeyID: keyID, KeySecret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	// Fail fast on a wrong password or a user without script permission; a Redis that is
	// only down is not fatal: the replica serves on local state until it answers.
	if err := store.Check(ctx); err != nil {
		log.Printf("Redis: %v", err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: client, KeyID: keyID, KeySecret: secret, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", h))
}

// Check contacts Redis, so a replica learns at start-up that it cannot share state: here
// nothing listens on the port.
func ExampleStore_Check() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there

	rdb, err := redisstore.NewClient("redis://" + addr)
	if err != nil {
		log.Fatal(err)
	}
	defer rdb.Close()
	store, err := redisstore.New(rdb, redisstore.Options{KeyID: "0123456789abcdef0123456789abcdef", KeySecret: turn.NewSecret("the TURN key's secret")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	err = store.Check(context.Background())
	fmt.Println("refused:", errors.Is(err, syscall.ECONNREFUSED))
	fmt.Println("healthy:", store.Healthy())
	// Output:
	// refused: true
	// healthy: false
}
