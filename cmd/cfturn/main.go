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
	"time"
)

func main() {
	// The first Ctrl-C (or SIGTERM) cancels the context: commands stop, servers shut down
	// gracefully. Later ones go to the app, so that a second Ctrl-C stops a server at once.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	interrupts := make(chan os.Signal, 1)
	go func() {
		<-signals
		cancel()
		for s := range signals {
			select {
			case interrupts <- s:
			default:
			}
		}
	}()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, completionTimeout: 2 * time.Second, interrupts: interrupts}
	os.Exit(a.run(ctx, os.Args[1:]))
}
