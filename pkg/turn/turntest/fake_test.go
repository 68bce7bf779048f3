package turntest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cfturn/cfturn/internal/contract"
	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// raw talks to the fake the way curl or another SDK would, through the contract validator.
type raw struct {
	t   *testing.T
	srv *turntest.Server
	hc  *http.Client
	ct  *contract.Transport
}

// unchecked returns a raw whose requests skip the contract: for requests that break it on purpose.
func (r *raw) unchecked() *raw {
	return &raw{t: r.t, srv: r.srv, hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, ct: r.ct}
}

func newRaw(t *testing.T, opts ...turntest.Option) *raw {
	srv := turntest.NewServer(opts...)
	t.Cleanup(srv.Close)
	// No keep-alives: Go's transport silently retries an idempotent request whose reused connection
	// was dropped, which would hide the Drop fault.
	ct := &contract.Transport{TB: t, Base: &http.Transport{DisableKeepAlives: true}}
	return &raw{t: t, srv: srv, hc: &http.Client{Transport: ct}, ct: ct}
}

func (r *raw) do(method, url, auth, body string) (int, http.Header, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out); err != nil {
			r.t.Fatalf("%s %s: body is not JSON: %s", method, url, b)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func (r *raw) keys(account string) string {
	return r.srv.APIBaseURL + "/accounts/" + account + "/calls/turn_keys"
}

func firstError(body map[string]any) (code float64, msg string) {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return 0, ""
	}
	e := errs[0].(map[string]any)
	return e["code"].(float64), e["message"].(string)
}

func TestStateTransitions(t *testing.T) {
	r := newRaw(t)
	tok, acct := r.srv.Token(), r.srv.AccountID()

	status, hdr, body := r.do("POST", r.keys(acct), tok, `{"name":"one"}`)
	if status != 201 || body["success"] != true || hdr.Get("Cf-Ray") == "" {
		t.Fatalf("create: %d %v", status, body)
	}
	key := body["result"].(map[string]any)
	id, secret := key["uid"].(string), key["key"].(string)
	if len(id) != 32 || len(secret) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q secret of %d", id, len(secret))
	}
	created, err := time.Parse(time.RFC3339, key["created"].(string))
	if err != nil {
		t.Fatalf("created is not RFC 3339: %v", err)
	}

	// The secret is returned on create only.
	for _, url := range []string{r.keys(acct), r.keys(acct) + "/" + id} {
		_, _, body := r.do("GET", url, tok, "")
		if strings.Contains(mustJSON(body), secret) {
			t.Errorf("GET %s shows the secret", url)
		}
	}

	status, _, body = r.do("PUT", r.keys(acct)+"/"+id, tok, `{"name":"two"}`)
	renamed := body["result"].(map[string]any)
	modified, _ := time.Parse(time.RFC3339, renamed["modified"].(string))
	if status != 200 || renamed["name"] != "two" || !modified.After(created) || renamed["created"] != key["created"] {
		t.Errorf("rename: %d %v", status, body)
	}

	// ICE credentials need the live key's ID and secret.
	ice := r.srv.ICEBaseURL + "/turn/keys/" + id + "/credentials/generate-ice-servers"
	status, _, body = r.do("POST", ice, secret, `{"ttl":600}`)
	if status != 201 {
		t.Fatalf("generate: %d %v", status, body)
	}
	servers := body["iceServers"].([]any)
	turnEntry := servers[1].(map[string]any)
	username := turnEntry["username"].(string)
	if status, _, _ := r.do("POST", ice, tok, `{"ttl":600}`); status != 401 {
		t.Errorf("generate with the API token instead of the key secret: %d", status)
	}
	for _, bad := range []string{`{"ttl":0}`, `{"ttl":172801}`, `{"ttl":1.5}`, `{}`, `nope`} {
		if status, _, _ := r.unchecked().do("POST", ice, secret, bad); status != 400 {
			t.Errorf("generate %s: %d, want 400", bad, status)
		}
	}
	revoke := r.srv.ICEBaseURL + "/turn/keys/" + id + "/credentials/" + username + "/revoke"
	if status, _, _ := r.do("POST", revoke, secret, ""); status != 204 || !r.srv.Revoked(username) {
		t.Errorf("revoke: %d, revoked %v", status, r.srv.Revoked(username))
	}
	if status, _, _ := r.do("POST", r.srv.ICEBaseURL+"/turn/keys/"+id+"/credentials/nobody/revoke", secret, ""); status != 404 {
		t.Errorf("revoke unknown username: %d", status)
	}

	status, _, body = r.do("DELETE", r.keys(acct)+"/"+id, tok, "")
	if status != 200 || body["result"].(map[string]any)["name"] != "two" {
		t.Errorf("delete: %d %v", status, body)
	}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		status, _, body := r.do(method, r.keys(acct)+"/"+id, tok, map[string]string{"PUT": "{}"}[method])
		if code, _ := firstError(body); status != 404 || code != 10006 || body["success"] != false {
			t.Errorf("%s deleted key: %d %v", method, status, body)
		}
	}
	if status, _, _ := r.do("POST", ice, secret, `{"ttl":600}`); status != 404 {
		t.Errorf("generate with a deleted key: %d", status)
	}
}

func TestAuthAndValidation(t *testing.T) {
	checked := newRaw(t)
	r := checked.unchecked() // requests without a token or with bad IDs break the contract on purpose
	tok, acct := r.srv.Token(), r.srv.AccountID()
	for _, tc := range []struct {
		method, url, auth, body string
		status                  int
		code                    float64
	}{
		{"GET", r.keys(acct), "", "", 401, 10001},
		{"GET", r.keys(acct), "wrong", "", 403, 10000},
		{"GET", r.keys(strings.Repeat("a", 33)), tok, "", 400, 7003},
		{"GET", r.keys("bad-id"), tok, "", 400, 7003},
		{"GET", r.keys(acct) + "/short", tok, "", 400, 7003},
		{"POST", r.keys(acct), tok, `{"name":5}`, 400, 10002},
		{"POST", r.keys(acct), tok, `{`, 400, 10002},
		{"POST", r.keys(acct), tok, `{"name":"` + strings.Repeat("n", 2000) + `"}`, 400, 10002},
		{"GET", r.srv.APIBaseURL + "/accounts/" + acct + "/calls/apps", tok, "", 404, 7000},
	} {
		status, _, body := r.do(tc.method, tc.url, tc.auth, tc.body)
		code, msg := firstError(body)
		if status != tc.status || code != tc.code || msg == "" || body["success"] != false {
			t.Errorf("%s %.80s: %d %v, want %d with code %v", tc.method, tc.url, status, body, tc.status, tc.code)
		}
	}
}

func TestAccountsAreIsolated(t *testing.T) {
	r := newRaw(t)
	tok := r.srv.Token()
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 32)
	_, _, body := r.do("POST", r.keys(a), tok, `{"name":"in-a"}`)
	id := body["result"].(map[string]any)["uid"].(string)
	if _, _, body := r.do("GET", r.keys(b), tok, ""); len(body["result"].([]any)) != 0 {
		t.Errorf("account b lists a's key: %v", body)
	}
	if status, _, _ := r.do("GET", r.keys(b)+"/"+id, tok, ""); status != 404 {
		t.Errorf("account b fetches a's key: %d", status)
	}
	if status, _, _ := r.do("DELETE", r.keys(b)+"/"+id, tok, ""); status != 404 || len(r.srv.Keys(a)) != 1 {
		t.Errorf("account b deletes a's key: %d", status)
	}
}

func TestKeyLimit(t *testing.T) {
	r := newRaw(t, turntest.WithMaxKeys(2))
	tok, acct := r.srv.Token(), r.srv.AccountID()
	for range 2 {
		r.do("POST", r.keys(acct), tok, "{}")
	}
	status, _, body := r.do("POST", r.keys(acct), tok, "{}")
	if code, _ := firstError(body); status != 400 || code != 10013 || len(r.srv.Keys(acct)) != 2 {
		t.Errorf("over the limit: %d %v", status, body)
	}
}

func TestFaults(t *testing.T) {
	r := newRaw(t)
	r.ct.RequestsOnly = true // faults break the response contract on purpose
	tok, acct := r.srv.Token(), r.srv.AccountID()
	list := r.keys(acct)
	get := func() (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", list, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := r.hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	r.srv.InjectFault(turntest.Fault{Operation: "listTurnKeys", Status: 429, RetryAfter: "7", Count: 2})
	r.srv.InjectFault(turntest.Fault{Operation: "createTurnKey", Status: 500}) // does not match list
	for range 2 {
		resp, b, _ := get()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || !bytes.Contains(b, []byte(`"success":false`)) {
			t.Errorf("429 fault: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	if resp, _, _ := get(); resp.StatusCode != 200 {
		t.Errorf("fault outlived its count: %d", resp.StatusCode)
	}
	r.srv.ClearFaults()

	for _, tc := range []struct {
		fault turntest.Fault
		check func(*http.Response, []byte, error) bool
	}{
		{turntest.Fault{Body: turntest.BodyHTML}, func(r *http.Response, b []byte, _ error) bool {
			return r.StatusCode == 502 && strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") && bytes.Contains(b, []byte("<html>"))
		}},
		{turntest.Fault{Body: turntest.BodyEmpty}, func(r *http.Response, b []byte, _ error) bool { return r.StatusCode == 200 && len(b) == 0 }},
		{turntest.Fault{Body: turntest.BodyTruncated}, func(r *http.Response, b []byte, _ error) bool {
			return r.StatusCode == 200 && len(b) > 0 && !json.Valid(b)
		}},
		{turntest.Fault{Body: turntest.BodySuccessFalse}, func(r *http.Response, b []byte, _ error) bool {
			return r.StatusCode == 200 && bytes.Contains(b, []byte(`"success":false`))
		}},
		{turntest.Fault{Body: turntest.BodyOversize}, func(r *http.Response, b []byte, _ error) bool { return len(b) > 5<<20 }},
		{turntest.Fault{Delay: 200 * time.Millisecond}, func(r *http.Response, _ []byte, _ error) bool { return r.StatusCode == 200 }},
		{turntest.Fault{Drop: true}, func(_ *http.Response, _ []byte, err error) bool { return err != nil }},
		{turntest.Fault{RedirectTo: list + "?moved"}, func(r *http.Response, _ []byte, _ error) bool { return r.StatusCode == 200 }},
	} {
		tc.fault.Operation = "listTurnKeys"
		r.srv.InjectFault(tc.fault)
		start := time.Now()
		resp, b, err := get()
		if resp == nil && err == nil {
			t.Fatal("no response and no error")
		}
		if !tc.check(resp, b, err) {
			t.Errorf("fault %+v: response %v, %d bytes, err %v", tc.fault, resp, len(b), err)
		}
		if tc.fault.Delay > 0 && time.Since(start) < tc.fault.Delay {
			t.Errorf("delay fault answered after %v", time.Since(start))
		}
	}

	// AfterProcessing: the create happens, the answer is lost.
	r.srv.InjectFault(turntest.Fault{Operation: "createTurnKey", Status: 502, AfterProcessing: true})
	if status, _, _ := r.do("POST", list, tok, "{}"); status != 502 || len(r.srv.Keys(acct)) != 1 {
		t.Errorf("processed-then-502: %d, keys %d", status, len(r.srv.Keys(acct)))
	}
	if got := r.srv.Requests()["listTurnKeys"]; got != 12 { // 3 + 8 faults + the redirect's second request
		t.Errorf("Requests()[listTurnKeys] = %d, want 12", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestInjectFaultRefusesUnknownOperations(t *testing.T) {
	f := turntest.New()
	err := f.InjectFault(turntest.Fault{Operation: "createKey", Status: 500})
	if err == nil || !strings.Contains(err.Error(), `"createKey"`) || !strings.Contains(err.Error(), "OpCreateTurnKey") {
		t.Fatalf("InjectFault(createKey) = %v, want an error naming the typo and the constants", err)
	}
	if err := f.InjectFault(turntest.Fault{Operation: turntest.OpCreateTurnKey, Status: 500}); err != nil {
		t.Fatalf("InjectFault(OpCreateTurnKey) = %v", err)
	}
	if err := f.InjectFault(turntest.Fault{Status: 500}); err != nil {
		t.Fatalf("InjectFault(every operation) = %v", err)
	}
}

func TestNameLimitCountsCharacters(t *testing.T) {
	r := newRaw(t)
	name := strings.Repeat("ю", 1024) // 2048 bytes, 1024 characters
	status, _, body := r.do("POST", r.keys(r.srv.AccountID()), r.srv.Token(), `{"name":"`+name+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("1024 characters: %d %v", status, body)
	}
	status, _, body = r.do("POST", r.keys(r.srv.AccountID()), r.srv.Token(), `{"name":"`+name+`ю"}`)
	if _, msg := firstError(body); status != http.StatusBadRequest || !strings.Contains(msg, "1024 characters") {
		t.Fatalf("1025 characters: %d %q", status, msg)
	}
}

// BenchmarkMint mints ICE credentials through the fake's handler with its table full, the case
// that used to slow down tenfold (issue 9, item 18).
func BenchmarkMint(b *testing.B) {
	ctx := context.Background()
	srv := turntest.NewServer()
	defer srv.Close()
	key, err := srv.Client().CreateKey(ctx, turn.CreateKeyParams{})
	if err != nil {
		b.Fatal(err)
	}
	mint := func() int {
		req := httptest.NewRequest("POST", "/v1/turn/keys/"+key.ID+"/credentials/generate-ice-servers", strings.NewReader(`{"ttl":3600}`))
		req.Header.Set("Authorization", "Bearer "+key.Secret.Reveal())
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for range 10_000 {
		mint()
	}
	b.ReportAllocs()
	for b.Loop() {
		if code := mint(); code != http.StatusCreated {
			b.Fatalf("status %d", code)
		}
	}
}

// BenchmarkKeyMemory reports the heap the fake holds per key (name of 18 characters), as the
// doc comment of package turntest states it.
func BenchmarkKeyMemory(b *testing.B) {
	const n = 1000
	for b.Loop() {
		f := turntest.New(turntest.WithMaxKeys(n))
		h := f.Handler()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			req := httptest.NewRequest("POST", "/client/v4/accounts/"+f.AccountID()+"/calls/turn_keys", strings.NewReader(`{"name":"a typical key name"}`))
			req.Header.Set("Authorization", "Bearer "+f.Token())
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := len(f.Keys(f.AccountID())); got != n {
			b.Fatalf("%d keys, want %d", got, n)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/key")
	}
}
