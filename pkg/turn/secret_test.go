package turn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// renderings returns every way v can reach a log or an error message.
func renderings(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&b, verb+"\n", v)
	}
	fmt.Fprintln(&b, v)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "v", v)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "v", v)
	b.Write(logs.Bytes())
	return b.String()
}

func TestSecretRedacts(t *testing.T) {
	const value = "s3cr3t-value-that-must-not-leak"
	s := turn.NewSecret(value)
	if s.Reveal() != value {
		t.Fatal("Reveal does not return the value")
	}
	out := renderings(t, s) + renderings(t, &s) + renderings(t, struct{ S turn.Secret }{s}) + renderings(t, struct{ s turn.Secret }{s})
	if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
		t.Fatalf("secret leaked:\n%s", out)
	}
	if !strings.Contains(out, "[REDACTED]") {
		t.Error("redacted form never shown")
	}
	b, err := json.Marshal(map[string]turn.Secret{"k": s})
	if err != nil || string(b) != `{"k":"[REDACTED]"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var back turn.Secret
	if err := json.Unmarshal([]byte(`"abc"`), &back); err != nil || back.Reveal() != "abc" {
		t.Errorf("unmarshal: %q, %v", back.Reveal(), err)
	}
	if turn.NewSecret("").String() != "" || !turn.NewSecret("").IsZero() {
		t.Error("empty secret is not the zero Secret")
	}
}

// None of our types shows a credential when printed or logged, and the client shows no token.
func TestTypesRedact(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	key, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{e.fake.Token(), key.Secret.Reveal(), ice.Servers[1].Username, ice.Servers[1].Credential.Reveal()}
	out := renderings(t, key) + renderings(t, &key) + renderings(t, ice) + renderings(t, ice.Servers) + renderings(t, e.client)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("a credential leaked into:\n%s", out)
		}
	}
	if !strings.Contains(out, key.ID) || !strings.Contains(out, "turn:") {
		t.Error("redaction hid the harmless fields too")
	}
}

// ICEServers is for the browser: marshalled, it is exactly the RTCConfiguration, credentials
// included, with any field Cloudflare adds kept.
func TestICEServersJSONForBrowsers(t *testing.T) {
	in := `{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]},{"urls":["turn:turn.cloudflare.com:3478?transport=udp"],"username":"u","credential":"c","credentialType":"password"}],"note":1}`
	var s turn.ICEServers
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Servers[1].Credential.Reveal() != "c" || s.Servers[1].Username != "u" {
		t.Fatalf("decoded %v", s)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]},{"urls":["turn:turn.cloudflare.com:3478?transport=udp"],"username":"u","credential":"c","credentialType":"password"}],"note":1}`
	if string(out) != want {
		t.Errorf("marshal\n got: %s\nwant: %s", out, want)
	}
	if b, _ := json.Marshal(s.Servers); strings.Contains(string(b), `"c"`) || strings.Contains(string(b), `"u"`) {
		t.Errorf("a lone entry marshals its credentials: %s", b)
	}
	var one turn.ICEServer
	if err := json.Unmarshal([]byte(`{"urls":"stun:x"}`), &one); err != nil || len(one.URLs) != 1 {
		t.Errorf("urls as a string: %v, %v", one, err)
	}
}
