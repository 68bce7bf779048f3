package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/internal/syncbuf"
)

// On every interface the relay needs the address clients dial; with it, that is what it prints.
func TestServeFakeRelayOnEveryInterface(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		r := runWithStdin("", nil, "serve-fake", "--addr", "127.0.0.1:0", "--relay-addr", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "--relay-advertise") {
			t.Errorf("serve-fake --relay-addr %s: exit %d, want 2 and a hint at --relay-advertise: %s", addr, r.code, r.stderr)
		}
	}
	if r := runWithStdin("", nil, "serve-fake", "--addr", "127.0.0.1:0", "--no-relay", "--relay-advertise", "127.0.0.1"); r.code != 2 {
		t.Errorf("serve-fake --no-relay --relay-advertise: exit %d, want 2: %s", r.code, r.stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve-fake", "--json", "--addr", "127.0.0.1:0", "--relay-addr", "0.0.0.0:0", "--relay-advertise", "127.0.0.1"},
			strings.NewReader(""), out, io.Discard, func(string) string { return "" })
	}()
	if udp := waitFor(t, out, `"relayUDPAddr": "([^"]*)"`); !strings.HasPrefix(udp, "127.0.0.1:") {
		t.Errorf("relay UDP address %q, want the advertised 127.0.0.1:\n%s", udp, out)
	}
	stop(t, "serve-fake", cancel, done)
}
