package iceserve_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// startServer serves h with srv's settings on a loopback port until the test ends.
func startServer(t *testing.T, srv *iceserve.Server) (url string, done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); srv.Close() })
	return "http://" + l.Addr().String(), errc, cancel
}

func TestServerHostGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	url, _, _ := startServer(t, &iceserve.Server{Handler: ok})
	for host, want := range map[string]int{"localhost": 200, "127.0.0.1:1234": 200, "[::1]": 200, "evil.example": 421, "LOCALHOST.": 421} {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d (loopback names only on a loopback listener)", host, resp.StatusCode, want)
		}
	}
	url, _, _ = startServer(t, &iceserve.Server{Handler: ok, AllowedHosts: []string{"app.example"}})
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "App.Example:443"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("AllowedHosts app.example, Host App.Example:443: %d, want 200", resp.StatusCode)
	}
}

func TestServerMaxConns(t *testing.T) {
	srv := &iceserve.Server{Handler: http.NotFoundHandler(), MaxConns: 2}
	url, _, _ := startServer(t, srv)
	addr := strings.TrimPrefix(url, "http://")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// A byte through each proves it was accepted before the next dial.
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		buf := make([]byte, 12)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("held connection: %v", err)
		}
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Error("a third connection was served with MaxConns 2")
	}
	if srv.ConnsRefused() != 1 {
		t.Errorf("ConnsRefused() = %d, want 1", srv.ConnsRefused())
	}
	for _, c := range held {
		c.Close()
	}
}

// A shutdown answers the request in flight, and says how many there were; Close cuts one off.
func TestServerShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "answered")
	})
	var atShutdown int64 = -1
	srv := &iceserve.Server{Handler: slow, OnShutdown: func(n int64) { atShutdown = n; close(release) }}
	url, done, cancel := startServer(t, srv)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if s := <-got; s != "answered" || atShutdown != 1 {
		t.Errorf("in flight at shutdown: %d, answer %q; want 1 and answered", atShutdown, s)
	}

	entered2 := make(chan struct{})
	stuck := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { close(entered2); <-r.Context().Done() })
	srv = &iceserve.Server{Handler: stuck}
	url, done, _ = startServer(t, srv)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered2
	srv.Close()
	if err := <-errc; err == nil {
		t.Error("Close did not cut off the request in flight")
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v, want nil", err)
	}
}

// One source cannot hold every slot: past MaxConnsPerSource its connections are closed at once,
// logged, while another source still gets in.
func TestServerMaxConnsPerSource(t *testing.T) {
	logs := &syncbuf.Buffer{}
	srv := &iceserve.Server{Handler: http.NotFoundHandler(), MaxConns: 10, MaxConnsPerSource: 2,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	url, _, _ := startServer(t, srv)
	addr := strings.TrimPrefix(url, "http://")
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	served := func(c net.Conn) bool {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadFull(c, make([]byte, 12))
		return err == nil
	}
	for i := range 2 {
		if !served(dialFrom("127.0.0.1")) {
			t.Fatalf("connection %d from 127.0.0.1 not served", i+1)
		}
	}
	if served(dialFrom("127.0.0.1")) {
		t.Error("a third connection from 127.0.0.1 was served with MaxConnsPerSource 2")
	}
	if !served(dialFrom("127.0.0.2")) {
		t.Error("another source was refused")
	}
	if srv.ConnsRefused() != 1 || !strings.Contains(logs.String(), "MaxConnsPerSource") {
		t.Errorf("ConnsRefused %d, logs %q; want 1 and a line naming the bound", srv.ConnsRefused(), logs.String())
	}
}
