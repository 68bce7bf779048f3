package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// openPTY returns both ends of a new pseudo-terminal: what a person types goes into the first,
// and cfturn reads it from the second.
func openPTY(t *testing.T) (keyboard, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// On a terminal keys delete asks; "y" deletes; anything else, no answer (Ctrl-D) or a terminal
// gone deletes nothing and exits 2.
func TestDeleteAsksOnTerminal(t *testing.T) {
	srv := turntest.NewServer()
	defer srv.Close()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	for _, tc := range []struct {
		typed   string // "" closes the terminal instead
		code    int
		deleted bool
		want    string
	}{
		{"n\n", 2, false, "not confirmed; nothing deleted"},
		{"\x04", 2, false, "no answer (EOF) and nothing deleted: pass --yes"},
		{"", 2, false, "pass --yes"},
		{"y\n", 0, true, ""},
	} {
		key := createKey(t, srv)
		keyboard, tty := openPTY(t)
		if tc.typed == "" {
			keyboard.Close()
		} else if _, err := keyboard.WriteString(tc.typed); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		code := run(context.Background(), []string{"--base-url", srv.APIBaseURL, "keys", "delete", key.ID}, tty, &stdout, &stderr,
			func(k string) string { return env[k] })
		r := result{code, stdout.String(), stderr.String()}
		asked := strings.Contains(r.stderr, "Delete TURN key "+key.ID+"?")
		if r.code != tc.code || asked != (tc.typed != "") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("typed %q: exit %d, stderr %q", tc.typed, r.code, r.stderr)
		}
		_, err := srv.Client().GetKey(context.Background(), turn.KeyParams{KeyID: key.ID})
		if deleted := err != nil; deleted != tc.deleted {
			t.Errorf("typed %q: deleted %v, want %v (%v)", tc.typed, deleted, tc.deleted, err)
		}
	}
}

// On a terminal, usage over several queries counts them on one line that it rewrites.
func TestUsageProgressOnTerminal(t *testing.T) {
	srv := usageFake(t, turntest.WithAnalyticsLimits(time.Hour, 0, 0))
	screen, tty := openPTY(t)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": srv.Token(), "CLOUDFLARE_ACCOUNT_ID": srv.AccountID()}
	var stdout strings.Builder
	code := run(context.Background(), []string{"--base-url", srv.APIBaseURL, "usage", "--since", "3h", "--every", "1h"}, strings.NewReader(""), &stdout, tty,
		func(k string) string { return env[k] })
	tty.Close()
	shown, _ := io.ReadAll(screen) // ends with EIO once the terminal's other side is closed
	if code != 0 {
		t.Fatalf("exit %d: %q", code, shown)
	}
	want := "\rcfturn: usage: query 1 of 3\rcfturn: usage: query 2 of 3\rcfturn: usage: query 3 of 3\r\n"
	if string(shown) != want {
		t.Errorf("the terminal showed %q, want %q", shown, want)
	}
}
