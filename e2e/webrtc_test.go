package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turntest/turnrelay"
)

// connectTimeout bounds one connection attempt of two peers on loopback, a loaded machine included.
const connectTimeout = 20 * time.Second

// peers are two relay-only peer connections and the data channel between them.
type peers struct {
	a, b     *webrtc.PeerConnection
	received chan string // messages that reached b
	opened   chan *webrtc.DataChannel
	failed   chan webrtc.PeerConnectionState
}

func (p *peers) close() {
	p.a.Close()
	p.b.Close()
}

// newPeers makes two peers that may use relay candidates only, and offers/answers without
// trickle, so each side's description carries every candidate it gathered.
func newPeers(t *testing.T, servers []webrtc.ICEServer) (*peers, [2]int) {
	t.Helper()
	var se webrtc.SettingEngine
	// Fail fast when no candidate pair works, rather than after the default 25 s.
	se.SetICETimeouts(2*time.Second, 4*time.Second, 500*time.Millisecond)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	cfg := webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	a, err := api.NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.NewPeerConnection(cfg)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	p := &peers{a: a, b: b, received: make(chan string, 4), opened: make(chan *webrtc.DataChannel, 1), failed: make(chan webrtc.PeerConnectionState, 2)}
	t.Cleanup(p.close)
	for _, pc := range []*webrtc.PeerConnection{a, b} {
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateFailed {
				select {
				case p.failed <- s:
				default: // one failure is enough to know
				}
			}
		})
	}
	dc, err := a.CreateDataChannel("e2e", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() {
		select {
		case p.opened <- dc:
		default:
		}
	})
	b.OnDataChannel(func(d *webrtc.DataChannel) {
		d.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case p.received <- string(m.Data):
			default: // the test reads one message; more must not block pion
			}
		})
	})

	var candidates [2]int
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	candidates[0] = strings.Count(a.LocalDescription().SDP, "a=candidate:")
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	candidates[1] = strings.Count(b.LocalDescription().SDP, "a=candidate:")
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	return p, candidates
}

// fetchICE gets iceServers from a credential endpoint, as a browser would, and returns them with
// the TURN username.
func fetchICE(t *testing.T, url string) ([]webrtc.ICEServer, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		ICEServers []webrtc.ICEServer `json:"iceServers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	for _, s := range body.ICEServers {
		if s.Username != "" {
			return body.ICEServers, s.Username
		}
	}
	t.Fatalf("GET %s: no TURN credential in %+v", url, body.ICEServers)
	return nil, ""
}

func selectedTypes(pc *webrtc.PeerConnection) (local, remote webrtc.ICECandidateType, err error) {
	sctp := pc.SCTP()
	if sctp == nil {
		return 0, 0, errors.New("no SCTP transport")
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return 0, 0, fmt.Errorf("no selected candidate pair: %v", err)
	}
	return pair.Local.Typ, pair.Remote.Typ, nil
}

// TestDataChannelThroughTheFakesRelay: credentials minted through iceserve.Handler → pkg/turn → the
// fake open a data channel between two relay-only pion peers; once revoked, they open nothing.
func TestDataChannelThroughTheFakesRelay(t *testing.T) {
	srv := turntest.NewServer()
	t.Cleanup(srv.Close)
	relay, err := turnrelay.Attach(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	ctx := context.Background()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{Name: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := iceserve.NewHandler(iceserve.Config{Client: srv.Client(), KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := httptest.NewServer(h)
	t.Cleanup(endpoint.Close)
	servers, username := fetchICE(t, endpoint.URL)

	p, candidates := newPeers(t, servers)
	if candidates[0] == 0 || candidates[1] == 0 {
		t.Fatalf("relay candidates gathered: %v, want some on both peers", candidates)
	}
	select {
	case dc := <-p.opened:
		if err := dc.SendText("hello through TURN"); err != nil {
			t.Fatal(err)
		}
	case s := <-p.failed:
		t.Fatalf("connection %s before the data channel opened", s)
	case <-time.After(connectTimeout):
		t.Fatal("the data channel did not open")
	}
	select {
	case got := <-p.received:
		if got != "hello through TURN" {
			t.Fatalf("received %q", got)
		}
	case <-time.After(connectTimeout):
		t.Fatal("the message did not arrive")
	}
	for name, pc := range map[string]*webrtc.PeerConnection{"a": p.a, "b": p.b} {
		local, remote, err := selectedTypes(pc)
		if err != nil || local != webrtc.ICECandidateTypeRelay || remote != webrtc.ICECandidateTypeRelay {
			t.Errorf("peer %s selected %v ⇄ %v (%v), want relay ⇄ relay", name, local, remote, err)
		}
	}
	// DTLS and SCTP talk both ways: the relay reported bytes to the client and from it.
	if got := srv.Relayed(username); got.Egress == 0 || got.Ingress == 0 {
		t.Errorf("the relay reported %+v for the credential, want bytes each way", got)
	}
	p.close()

	err = srv.Client().RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: key.ID, KeySecret: key.Secret, Username: username})
	if err != nil {
		t.Fatal(err)
	}
	p, candidates = newPeers(t, servers)
	if candidates != [2]int{} {
		t.Errorf("a revoked credential gathered relay candidates: %v", candidates)
	}
	select {
	case <-p.opened:
		t.Fatal("a data channel opened with a revoked credential")
	case <-p.failed:
	case <-time.After(connectTimeout):
		t.Fatal("the connection with a revoked credential neither failed nor opened")
	}
}
