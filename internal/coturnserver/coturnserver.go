// Package coturnserver starts a real coturn TURN server (turnserver) for tests: on a free
// loopback port, with shared-secret credentials (use-auth-secret), loopback peers allowed, its
// database, log and configuration in a temporary directory, stopped when the test ends.
package coturnserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/testproc"
)

// Realm is the realm the server runs with.
const Realm = "cfturn.test"

// Options configures Start.
type Options struct {
	// Secrets are the static-auth-secret values the server accepts, all at once (required).
	Secrets []string
	// IPv6 makes the server listen and relay on ::1 instead of 127.0.0.1.
	IPv6 bool
}

// Server is a running turnserver.
type Server struct {
	Addr string // host:port of STUN/TURN over UDP and TCP, e.g. 127.0.0.1:40001 or [::1]:40001
	dir  string
	opts Options
	port int
	proc *testproc.Process
}

// Start starts turnserver for tb and stops it in tb.Cleanup. Without a turnserver binary the test
// is skipped, except under CI (CI set), where it fails: `make deps` installs coturn.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if _, err := exec.LookPath("turnserver"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("turnserver not installed (apt-get install coturn); make deps installs it")
		}
		tb.Skip("turnserver not installed: apt-get install coturn")
	}
	if len(opts.Secrets) == 0 {
		tb.Fatal("coturnserver: Options.Secrets is empty; give at least one shared secret")
	}
	for _, s := range opts.Secrets {
		if s == "" || strings.ContainsAny(s, "\r\n") {
			tb.Fatal("coturnserver: a secret is empty or holds a line break")
		}
	}
	s := &Server{dir: tb.TempDir(), opts: opts}
	var err error
	for try := 0; try < 5; try++ {
		if err = s.launch(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// URLs returns the server's TURN URLs over UDP and TCP.
func (s *Server) URLs() []string {
	return []string{"turn:" + s.Addr + "?transport=udp", "turn:" + s.Addr + "?transport=tcp"}
}

func (s *Server) ip() string {
	if s.opts.IPv6 {
		return "::1"
	}
	return "127.0.0.1"
}

// freePort finds a port free for UDP and TCP alike on the server's address.
func (s *Server) freePort() (int, error) {
	for range 16 {
		l, err := net.Listen("tcp", net.JoinHostPort(s.ip(), "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(s.ip(), strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("coturnserver: no port free for both UDP and TCP")
}

// config is turnserver's configuration: secrets go in the file, not the command line, where
// every user of the machine could read them.
func (s *Server) config() string {
	lines := []string{
		"listening-ip=" + s.ip(),
		"relay-ip=" + s.ip(),
		"listening-port=" + strconv.Itoa(s.port),
		// Alternative and TLS ports are derived from listening-port unless set; keep them off.
		"no-tls", "no-dtls",
		"min-port=49152", "max-port=65535",
		"realm=" + Realm,
		"use-auth-secret",
		"allow-loopback-peers",
		"no-cli",
		"no-multicast-peers",
		"fingerprint",
		"userdb=" + filepath.Join(s.dir, "turndb"),
		"pidfile=" + filepath.Join(s.dir, "turnserver.pid"),
		"log-file=" + filepath.Join(s.dir, "turnserver.log"),
		"simple-log",
		"no-stdout-log",
		"verbose",
	}
	for _, secret := range s.opts.Secrets {
		lines = append(lines, "static-auth-secret="+secret)
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *Server) launch() error {
	port, err := s.freePort()
	if err != nil {
		return err
	}
	s.port = port
	s.Addr = net.JoinHostPort(s.ip(), strconv.Itoa(port))
	conf := filepath.Join(s.dir, "turnserver.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command("turnserver", "-c", conf)
	cmd.Dir = s.dir
	proc, err := testproc.Start(cmd, fmt.Sprintf("turnserver on port %d", port), 20*time.Second, 20*time.Millisecond, s.listening, func() string { return s.LogTail(10) })
	if err != nil {
		return err
	}
	s.proc = proc
	return nil
}

// listening reports whether turnserver accepts TCP on its port and has logged that its UDP
// listener is open.
func (s *Server) listening() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return strings.Contains(s.log(), "UDP listener opened")
}

func (s *Server) log() string {
	// coturn may add a date to the log file's name.
	matches, _ := filepath.Glob(filepath.Join(s.dir, "turnserver*.log"))
	var b strings.Builder
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		b.Write(data)
	}
	return b.String()
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	lines := strings.Split(strings.TrimSpace(s.log()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Log returns the server's whole log, for tests that check what it saw (or did not see).
func (s *Server) Log() string { return s.log() }

// Stop kills the server and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.proc.Stop()
}
