package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cfturn/cfturn/internal/janusserver"
)

// janusEchotest opens a session on Janus, attaches the echotest plugin as opaqueID and sends it a
// data-channel offer from a pion peer, all candidates included. Setting up ICE for the offer
// makes Janus fetch TURN credentials from its turn_rest_api and gather relay candidates with
// them. It returns Janus's answer SDP, which carries the candidates Janus gathered.
func janusEchotest(t *testing.T, j *janusserver.Server, opaqueID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.CreateDataChannel("echo", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered

	created, err := j.Call(ctx, "", map[string]any{"janus": "create"})
	if err != nil {
		t.Fatal(err)
	}
	session := idOf(t, created)
	attach := map[string]any{"janus": "attach", "plugin": "janus.plugin.echotest"}
	if opaqueID != "" {
		attach["opaque_id"] = opaqueID
	}
	attached, err := j.Call(ctx, "/"+session, attach)
	if err != nil {
		t.Fatal(err)
	}
	handle := idOf(t, attached)
	msg := map[string]any{
		"janus": "message",
		"body":  map[string]any{"audio": false, "video": false, "data": true},
		"jsep":  map[string]any{"type": "offer", "sdp": pc.LocalDescription().SDP},
	}
	if _, err := j.Call(ctx, "/"+session+"/"+handle, msg); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		ev, err := j.Event(ctx, session)
		if err != nil {
			t.Fatalf("waiting for the echotest's answer: %v\njanus log:\n%s", err, j.LogTail(30))
		}
		if jsep, ok := ev["jsep"].(map[string]any); ok {
			sdp, _ := jsep["sdp"].(string)
			return sdp
		}
	}
	t.Fatalf("no answer from the echotest in 40s\njanus log:\n%s", j.LogTail(30))
	return ""
}

func idOf(t *testing.T, answer map[string]any) string {
	t.Helper()
	data, _ := answer["data"].(map[string]any)
	id, ok := data["id"].(float64)
	if !ok {
		t.Fatalf("janus answer without data.id: %v", answer)
	}
	return fmt.Sprintf("%.0f", id)
}

// relayCandidates returns the relay candidates' "address port" in an SDP.
func relayCandidates(sdp string) []string {
	var out []string
	for line := range strings.SplitSeq(sdp, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "a="))
		// candidate:<foundation> <component> <transport> <priority> <address> <port> typ relay ...
		if len(f) >= 8 && strings.HasPrefix(f[0], "candidate:") && f[6] == "typ" && f[7] == "relay" {
			out = append(out, f[4]+" "+f[5])
		}
	}
	return out
}
