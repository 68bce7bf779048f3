package turntest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/cfturn/cfturn/internal/syncbuf"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// Every failure the fake answers is logged once, with its status and the start of its error, and
// no record holds a token or a key secret a request sent; a success logs nothing.
func TestFailuresAreLogged(t *testing.T) {
	var out syncbuf.Buffer
	r := newRaw(t, turntest.WithLogger(slog.New(slog.NewJSONHandler(&out, nil))))
	tok, acct := r.srv.Token(), r.srv.AccountID()
	wrongToken := "wrong-token-" + strings.Repeat("x", 30)

	status, _, body := r.do("POST", r.keys(acct), tok, `{"name":"logged"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	key := body["result"].(map[string]any)
	id, secret := key["uid"].(string), key["key"].(string)
	if out.String() != "" {
		t.Fatalf("a success was logged: %s", out.String())
	}

	if status, _, _ := r.do("GET", r.keys(acct), wrongToken, ""); status != http.StatusForbidden {
		t.Fatalf("wrong token: %d", status)
	}
	wrongSecret := strings.Repeat("f", len(secret)-1) + "0"
	if status, _, _ := r.do("POST", r.srv.ICEBaseURL+"/turn/keys/"+id+"/credentials/generate-ice-servers", wrongSecret, `{"ttl": 60}`); status != http.StatusUnauthorized {
		t.Fatalf("wrong key secret: %d", status)
	}
	u := r.unchecked()
	if status, _, body := u.do("POST", r.srv.APIBaseURL+"/graphql", tok, `{"query": "{ viewer { nosuchfield } }"}`); status != http.StatusOK || body["errors"] == nil {
		t.Fatalf("bad query: %d %v", status, body)
	}
	if err := r.srv.InjectFault(turntest.Fault{Operation: turntest.OpListTurnKeys, Drop: true}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", r.keys(acct), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := u.hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the drop fault answered")
	}

	type record struct {
		Level, Msg, Method, Path, Error string
		Status                          int
	}
	var got []record
	for line := range strings.Lines(out.String()) {
		var rec record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		got = append(got, rec)
	}
	want := []struct {
		path, error string
		status      int
	}{
		{"/client/v4/accounts/" + acct + "/calls/turn_keys", "Authentication error", 403},
		{"/v1/turn/keys/" + id + "/credentials/generate-ice-servers", "wrong key secret", 401},
		{"/client/v4/graphql", "nosuchfield", 200},
		{"/client/v4/accounts/" + acct + "/calls/turn_keys", "connection dropped", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(got), len(want), out.String())
	}
	for i, w := range want {
		g := got[i]
		if g.Level != "WARN" || g.Path != w.path || g.Status != w.status || !strings.Contains(g.Error, w.error) {
			t.Errorf("record %d = %+v, want path %s, status %d, an error naming %q", i, g, w.path, w.status, w.error)
		}
	}
	for _, s := range []string{tok, wrongToken, secret, wrongSecret} {
		if strings.Contains(out.String(), s) {
			t.Errorf("a credential reached the log:\n%s", out.String())
		}
	}
}

// A flood of one failure costs ten lines a minute, and the count of the rest when the server
// closes.
func TestFailureLogIsSampled(t *testing.T) {
	var out syncbuf.Buffer
	r := newRaw(t, turntest.WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
	for range 25 {
		if status, _, _ := r.do("GET", r.keys(r.srv.AccountID()), "wrong-token", ""); status != http.StatusForbidden {
			t.Fatalf("wrong token: %d", status)
		}
	}
	if n := strings.Count(out.String(), "answered a failure"); n != 10 {
		t.Errorf("%d of 25 failures logged, want 10:\n%s", n, out.String())
	}
	r.srv.Close()
	if !strings.Contains(out.String(), `msg="turntest: failures not logged" status=403 count=15 interval=1m0s`) {
		t.Errorf("no count of the 15 failures not logged at Close:\n%s", out.String())
	}
}

// A fault that answers with part of a real answer under an error status (a create's key secret, an
// ICE credential) is logged by its status alone: the log never quotes a body the fake did not word.
func TestFailureLogQuotesNoRealBody(t *testing.T) {
	var out syncbuf.Buffer
	r := newRaw(t, turntest.WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
	tok, acct := r.srv.Token(), r.srv.AccountID()
	if err := r.srv.InjectFault(turntest.Fault{Operation: turntest.OpCreateTurnKey, Status: 500, Body: turntest.BodyTruncated}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", r.keys(acct), strings.NewReader(`{"name":"secret"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.unchecked().hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), `"key":"`) {
		t.Fatalf("truncated create: %d %s, want 500 with half the answer, the secret in it", resp.StatusCode, body)
	}
	keys := r.srv.Keys(acct)
	if len(keys) != 1 {
		t.Fatalf("the fault's create made %d keys, want 1", len(keys))
	}
	if !strings.Contains(out.String(), `error="Internal Server Error" status=500`) {
		t.Errorf("the failure was not logged by its status:\n%s", out.String())
	}
	if strings.Contains(out.String(), `"key"`) || strings.Contains(out.String(), "created") {
		t.Errorf("the log quotes the answer's body:\n%s", out.String())
	}
}
