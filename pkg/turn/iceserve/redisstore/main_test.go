package redisstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestMain silences go-redis's own log of every failed dial: the tests kill Redis on purpose,
// and the store logs each change of state itself.
func TestMain(m *testing.M) {
	redis.SetLogger(discard{})
	os.Exit(m.Run())
}

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}
