// Package redisserver starts a real redis-server for tests: on a free loopback port, with
// persistence off, in a temporary directory, stopped when the test ends.
package redisserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/testproc"
)

// Server is a running redis-server.
type Server struct {
	Addr   string // host:port on loopback
	CAFile string // with StartTLS: the PEM certificate to trust (self-signed, for 127.0.0.1)
	dir    string
	port   int
	tls    []string // redis-server's TLS arguments, with StartTLS
	proc   *testproc.Process
}

// Start starts redis-server for tb and stops it in tb.Cleanup. Without a redis-server binary the
// test is skipped, except under CI (CI set), where it fails: CI installs the server.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartTLS is Start with TLS only: clients connect with rediss:// and must trust CAFile.
func StartTLS(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, withTLS bool) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server not installed (apt-get install redis-server); .ci/run installs it")
		}
		tb.Skip("redis-server not installed: apt-get install redis-server")
	}
	s := &Server{dir: tb.TempDir()}
	if withTLS {
		if err := s.makeCert(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.start(0); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// makeCert writes a self-signed certificate for 127.0.0.1 and its key, valid for a day.
func (s *Server) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cfturn test redis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.dir, "cert.pem")
	keyFile := filepath.Join(s.dir, "key.pem")
	if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	s.tls = []string{"--tls-cert-file", s.CAFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no"}
	return nil
}

// start runs redis-server on port (0: a free one) and waits until it answers PING.
func (s *Server) start(port int) error {
	for try := 0; ; try++ {
		p := port
		if p == 0 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			p = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		err := s.launch(p)
		if err == nil {
			return nil
		}
		// The port may have been taken between Close and redis binding it; try another.
		if port != 0 || try == 4 {
			return err
		}
	}
}

func (s *Server) launch(port int) error {
	s.port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ports := []string{"--port", strconv.Itoa(port)}
	if s.tls != nil {
		ports = append([]string{"--port", "0", "--tls-port", strconv.Itoa(port)}, s.tls...)
	}
	cmd := exec.Command("redis-server", append(ports,
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no")...)
	proc, err := testproc.Start(cmd, fmt.Sprintf("redis-server on port %d", port), 20*time.Second, 20*time.Millisecond, s.answers, s.logTail)
	if err != nil {
		return err
	}
	s.proc = proc
	return nil
}

// Stop kills the server (as a crash would) and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.proc.Stop()
}

// Pause stops the server's process (SIGSTOP) without closing its connections, as a hung or
// overloaded server looks to clients; Resume continues it.
func (s *Server) Pause() error { return s.proc.Cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() error { return s.proc.Cmd.Process.Signal(syscall.SIGCONT) }

// Restart starts the server again on the same port, empty (persistence is off).
func (s *Server) Restart() error {
	s.Stop()
	return s.launch(s.port)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// answers reports whether the server is up: PING in plain text, or a TCP connection with TLS
// (the TLS handshake and PING then happen in the tests' own clients).
func (s *Server) answers() bool {
	if s.tls != nil {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	return ping(s.Addr) == nil
}

func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("unexpected answer to PING: " + strings.TrimSpace(line))
	}
	return nil
}
