// Command cfturn manages Cloudflare Realtime TURN keys, mints ICE credentials, and runs an offline
// fake of the API for trying things out and for tests.
//
// Run `cfturn --help` for the commands, or `cfturn demo` to see a key's whole life against the
// built-in fake, no account needed.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
