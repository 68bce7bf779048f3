package iceserve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

func ExampleHandler() {
	fake := turntest.NewServer() // stands in for Cloudflare
	defer fake.Close()
	client := fake.Client()
	key, err := client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "browsers"})
	if err != nil {
		log.Fatal(err)
	}

	h, err := iceserve.NewHandler(iceserve.Config{
		Client: client, KeyID: key.ID, KeySecret: key.Secret,
		TTL: 4 * time.Hour,
		// Set by the authenticating proxy in front of the handler, never by the browser.
		IdentityHeader: "X-User",
		AllowedOrigins: []string{"https://app.example"},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h) // in production: http.Handle("/ice", h)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
	req.Header.Set("X-User", "user-4523958")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		ICEServers []struct {
			URLs []string `json:"urls"`
		} `json:"iceServers"`
		ExpiresAt int64 `json:"expiresAt"`
	}
	json.NewDecoder(resp.Body).Decode(&answer)
	fmt.Println(resp.StatusCode, len(answer.ICEServers), "servers")
	fmt.Println(answer.ICEServers[0].URLs) // port 53 dropped: browsers block it
	// Output:
	// 200 2 servers
	// [stun:stun.cloudflare.com:3478]
}

// A Server puts the hardening of an internet-facing server around the handler, and stops
// gracefully when its context ends.
func ExampleServer() {
	fake := turntest.NewServer() // stands in for Cloudflare
	defer fake.Close()
	client := fake.Client()
	key, err := client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "browsers"})
	if err != nil {
		log.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: client, KeyID: key.ID, KeySecret: key.Secret, IdentityHeader: "X-User"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /ice", h)

	l, err := net.Listen("tcp", "127.0.0.1:0") // in production, e.g. ":8080" behind your proxy
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background()) // e.g. signal.NotifyContext(..., os.Interrupt)
	srv := &iceserve.Server{Handler: mux, AllowedHosts: []string{"127.0.0.1"}, MaxConns: 1000}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()

	req, _ := http.NewRequest(http.MethodPost, "http://"+l.Addr().String()+"/ice", nil)
	req.Header.Set("X-User", "user-4523958")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)

	stop()
	fmt.Println(<-done)
	// Output:
	// 200
	// <nil>
}
