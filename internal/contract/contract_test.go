package contract_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cfturn/cfturn/internal/contract"
)

// recorder is a TB that keeps what the transport reports instead of failing.
type recorder struct {
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

const (
	account = "023e105f4ecef8ad9ca31a8372d0c353"
	keyID   = "2a95132c15732412d22c1476fa83f27a"
	goodKey = `{"uid":"2a95132c15732412d22c1476fa83f27a","name":"n","created":"2024-01-01T00:00:00Z","modified":"2024-01-01T00:00:00Z"}`
)

func roundTrip(t *testing.T, status int, respBody, method, path, reqBody, auth string) []string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, respBody)
	}))
	defer ts.Close()
	rec := &recorder{}
	hc := &http.Client{Transport: &contract.Transport{TB: rec}}
	var body io.Reader
	if reqBody != "" {
		body = strings.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, ts.URL+"/prefix"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != respBody {
		t.Errorf("the transport changed the body: %q, want %q", got, respBody)
	}
	return rec.errs
}

func TestValidTrafficPasses(t *testing.T) {
	errs := roundTrip(t, 200, `{"success":true,"errors":[],"messages":[],"result":`+goodKey+`}`,
		"GET", "/client/v4/accounts/"+account+"/calls/turn_keys/"+keyID, "", "Bearer tok")
	if len(errs) != 0 {
		t.Fatalf("valid exchange reported: %v", errs)
	}
}

func TestCatchesWrongRequests(t *testing.T) {
	ok := `{"success":true,"errors":[],"messages":[],"result":` + goodKey + `}`
	for _, tc := range []struct {
		name, method, path, body, auth, want string
	}{
		{"no token", "GET", "/client/v4/accounts/" + account + "/calls/turn_keys/" + keyID, "", "", "bearer"},
		{"short key id", "GET", "/client/v4/accounts/" + account + "/calls/turn_keys/abc", "", "Bearer t", "key_id"},
		{"long account id", "GET", "/client/v4/accounts/" + account + "x/calls/turn_keys/" + keyID, "", "Bearer t", "account_id"},
		{"ttl zero", "POST", "/v1/turn/keys/" + keyID + "/credentials/generate-ice-servers", `{"ttl":0}`, "Bearer t", "ttl"},
		{"ttl as string", "POST", "/v1/turn/keys/" + keyID + "/credentials/generate-ice-servers", `{"ttl":"60"}`, "Bearer t", "ttl"},
		{"ICE on the key API root", "POST", "/client/v4/turn/keys/" + keyID + "/credentials/generate-ice-servers", `{"ttl":60}`, "Bearer t", "matches no operation"},
		{"unknown path", "GET", "/client/v4/accounts/" + account + "/calls/apps", "", "Bearer t", "matches no operation"},
		{"wrong method", "PATCH", "/client/v4/accounts/" + account + "/calls/turn_keys/" + keyID, "", "Bearer t", "matches no operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := roundTrip(t, 200, ok, tc.method, tc.path, tc.body, tc.auth)
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Fatalf("reports %q, want one mentioning %q", errs, tc.want)
			}
		})
	}
}

func TestCatchesWrongResponses(t *testing.T) {
	get := "/client/v4/accounts/" + account + "/calls/turn_keys/" + keyID
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"missing success", 200, `{"errors":[],"messages":[],"result":` + goodKey + `}`, "success"},
		{"short uid", 200, `{"success":true,"errors":[],"messages":[],"result":{"uid":"x","name":"n","created":"2024-01-01T00:00:00Z","modified":"2024-01-01T00:00:00Z"}}`, "uid"},
		{"bad date", 200, `{"success":true,"errors":[],"messages":[],"result":{"uid":"2a95132c15732412d22c1476fa83f27a","name":"n","created":"yesterday","modified":"2024-01-01T00:00:00Z"}}`, "created"},
		{"failure without errors", 404, `{"success":false,"errors":[],"messages":[]}`, "errors"},
		{"undocumented status", 302, `{}`, "302"},
		{"html", 502, `<html>bad gateway</html>`, "502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := roundTrip(t, tc.status, tc.body, "GET", get, "", "Bearer t")
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Fatalf("reports %q, want one mentioning %q", errs, tc.want)
			}
		})
	}
}
