package iceserve_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/redisserver"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/iceserve/redisstore"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Two replicas sharing one Redis: a TURN REST username and a Matrix user minted on one are
// served from the cache on the other. The modes use the handler's store, not one of their own.
func TestModesShareTheRedisStore(t *testing.T) {
	redis := redisserver.Start(t)
	fake := turntest.NewServer()
	defer fake.Close()
	key, err := fake.Client().CreateKey(context.Background(), turn.CreateKeyParams{Name: "replicas"})
	if err != nil {
		t.Fatal(err)
	}
	hs := newHomeserver(t)
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret(restKey))
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*httptest.Server
	for range 2 {
		rdb, err := redisstore.NewClient("redis://" + redis.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		store, err := redisstore.New(rdb, redisstore.Options{KeyID: key.ID, KeySecret: key.Secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		h, err := iceserve.NewHandler(iceserve.Config{Client: fake.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/turn-rest", h.TURNRESTHandler(keys))
		mux.Handle(iceserve.MatrixTURNServerPaths[0], h.MatrixHandler(verifier(t, iceserve.MatrixConfig{Homeserver: hs.URL})))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		replicas = append(replicas, srv)
	}
	get := func(srv *httptest.Server, path string, header http.Header) iceserve.TURNRESTAnswer {
		t.Helper()
		e := &modesEnv{srv: srv}
		status, _, body := e.do(t, "GET", path, nil, header)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		return decodeAnswer(t, body)
	}
	rest := "/turn-rest?" + restQuery("alice").Encode()
	a := get(replicas[0], rest, nil)
	b := get(replicas[1], rest, nil)
	m1 := get(replicas[0], iceserve.MatrixTURNServerPaths[0], bearer("tok-alice"))
	m2 := get(replicas[1], iceserve.MatrixTURNServerPaths[0], bearer("tok-alice"))
	if a.Username != b.Username || m1.Username != m2.Username || a.Username == m1.Username {
		t.Errorf("usernames %q/%q (TURN REST) and %q/%q (Matrix): want one per identity, shared by the replicas", a.Username, b.Username, m1.Username, m2.Username)
	}
	if n := fake.Fake.Requests()["generateIceServers"]; n != 2 {
		t.Errorf("%d mints for two identities on two replicas, want 2", n)
	}
}
