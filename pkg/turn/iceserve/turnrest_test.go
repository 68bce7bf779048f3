package iceserve_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

const (
	restKey    = "0123456789abcdef0123456789abcdef"
	restOldKey = "fedcba9876543210fedcba9876543210"
)

// restServer answers what ParseTURNRESTRequest made of each request: "200 <username>" or the
// refusal's status, reason and message.
func restServer(t *testing.T) *httptest.Server {
	t.Helper()
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret(restKey), turn.NewSecret(restOldKey))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		username, refusal := iceserve.ParseTURNRESTRequest(r, keys, 64)
		if refusal != nil {
			w.WriteHeader(refusal.Status)
			io.WriteString(w, refusal.Reason+": "+refusal.Message)
			return
		}
		io.WriteString(w, "user="+username)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestParseTURNRESTRequest(t *testing.T) {
	srv := restServer(t)
	form := "application/x-www-form-urlencoded"
	long := strings.Repeat("u", 65)
	for _, tc := range []struct {
		name, method, query, ctype, body, auth string
		status                                 int
		want                                   string
	}{
		{"GET key", "GET", "service=turn&username=alice&key=" + restKey, "", "", "", 200, "user=alice"},
		{"GET api, Janus's name", "GET", "service=turn&username=alice&api=" + restKey, "", "", "", 200, "user=alice"},
		{"GET both, as Janus sends them", "GET", "service=turn&api=" + restKey + "&key=" + restKey + "&username=alice", "", "", "", 200, "user=alice"},
		{"the rotated-out key still listed", "GET", "service=turn&key=" + restOldKey, "", "", "", 200, "user="},
		{"no username", "GET", "service=turn&key=" + restKey, "", "", "", 200, "user="},
		{"POST form only", "POST", "", form, "service=turn&username=bob&key=" + restKey, "", 200, "user=bob"},
		{"POST query and form, as Janus sends them", "POST", "service=turn&username=bob&key=" + restKey, form, "service=turn&username=bob&key=" + restKey, "", 200, "user=bob"},
		{"bearer", "GET", "service=turn&username=carol", "", "", "Bearer " + restKey, 200, "user=carol"},
		{"UTF-8 username", "GET", "service=turn&username=%C3%A9mile&key=" + restKey, "", "", "", 200, "user=émile"},

		{"no key", "GET", "service=turn&username=alice", "", "", "", 401, "unauthorized: API key missing"},
		{"wrong key", "GET", "service=turn&key=" + strings.Repeat("x", 32), "", "", "", 401, "unauthorized: wrong API key"},
		{"empty bearer", "GET", "service=turn", "", "", "Bearer ", 401, "unauthorized: wrong API key"},
		{"basic auth", "GET", "service=turn", "", "", "Basic " + restKey, 401, "unauthorized: wrong API key"},
		{"the key is checked before the service", "GET", "service=stun&key=wrong", "", "", "", 401, "unauthorized"},
		{"key and api differ", "GET", "service=turn&key=" + restKey + "&api=" + restOldKey, "", "", "", 400, "differ"},
		{"unknown service", "GET", "service=stun&key=" + restKey, "", "", "", 400, "bad_service: service must be turn"},
		{"no service", "GET", "key=" + restKey, "", "", "", 400, "bad_service"},
		{"username too long", "GET", "service=turn&username=" + long + "&key=" + restKey, "", "", "", 400, "identity_too_long: username over 64 bytes"},
		{"NUL in username", "GET", "service=turn&username=a%00b&key=" + restKey, "", "", "", 400, "without control characters"},
		{"not UTF-8", "GET", "service=turn&username=%FF&key=" + restKey, "", "", "", 400, "UTF-8"},
		{"two usernames", "POST", "service=turn&username=alice&key=" + restKey, form, "username=mallory", "", 400, "username given twice with different values"},
		{"malformed query", "GET", "service=turn&key=%zz", "", "", "", 400, "malformed query"},
		{"malformed body", "POST", "key=" + restKey, form, "service=%zz", "", 400, "malformed form body"},
		{"JSON body", "POST", "", "application/json", `{"service":"turn"}`, "", 415, "x-www-form-urlencoded"},
		{"oversized query", "GET", "service=turn&pad=" + strings.Repeat("p", iceserve.MaxTURNRESTRequestBytes), "", "", "", 414, "query over 4096 bytes"},
		{"oversized body", "POST", "", form, "service=turn&pad=" + strings.Repeat("p", iceserve.MaxTURNRESTRequestBytes), "", 413, "body over 4096 bytes"},
		{"PUT", "PUT", "service=turn&key=" + restKey, "", "", "", 405, "use GET or POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+"/turn-rest?"+tc.query, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.want)
			}
			if strings.Contains(string(body), restKey) || strings.Contains(string(body), restOldKey) {
				t.Errorf("the API key is in the answer: %q", body)
			}
		})
	}
}

func TestNewTURNRESTKeysRefusesWeakKeys(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string
	}{
		{nil, "no API key"},
		{[]string{"short"}, "API key 1 is 5 bytes"},
		{[]string{restKey, strings.Repeat("k", iceserve.MaxTURNRESTKeyBytes+1)}, "API key 2 is 201 bytes"},
		{[]string{"0123456789 abcdef"}, "holds a space"},
		{strings.Fields(strings.Repeat(restKey+" ", iceserve.MaxTURNRESTKeys+1)), "more than 8"},
	} {
		var ss []turn.Secret
		for _, k := range tc.keys {
			ss = append(ss, turn.NewSecret(k))
		}
		_, err := iceserve.NewTURNRESTKeys(ss...)
		if !errors.Is(err, iceserve.ErrTURNRESTConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want ErrTURNRESTConfig with %q", err, tc.want)
		}
	}
	k, err := iceserve.ReadTURNRESTKeys(strings.NewReader("# janus\n" + restKey + "\n\n  " + restOldKey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Match(restKey) || !k.Match(restOldKey) || k.Match(restKey[:31]) || k.Match("") {
		t.Error("Match does not match exactly the keys read")
	}
	if _, err := iceserve.ReadTURNRESTKeys(strings.NewReader("# nothing\n")); !errors.Is(err, iceserve.ErrTURNRESTConfig) {
		t.Errorf("a file of comments: %v", err)
	}
	// A long comment header must not cut the key after it short: the file is refused instead.
	long := strings.Repeat("# a comment line of sixty-odd characters, kept for the record\n", 40) + restKey + "\n"
	if _, err := iceserve.ReadTURNRESTKeys(strings.NewReader(long)); !errors.Is(err, iceserve.ErrTURNRESTConfig) || !strings.Contains(err.Error(), "over") {
		t.Errorf("a file over the size bound: %v, want it refused", err)
	}
}

func TestNewTURNRESTAnswer(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	servers := []turn.ICEServer{
		{URLs: []string{"stun:stun.cloudflare.com:3478", "stun:stun.cloudflare.com:53"}},
		{URLs: []string{"turn:turn.cloudflare.com:3478?transport=udp", "turn:turn.cloudflare.com:53?transport=udp", "stun:odd.example:3478",
			"turn:turn.cloudflare.com:3478?transport=tcp", "turns:turn.cloudflare.com:5349?transport=tcp"}, Username: "u1", Credential: turn.NewSecret("p1")},
		{URLs: []string{"turn:coturn.example.org:3478"}, Username: "u2", Credential: turn.NewSecret("p2")},
	}
	got, err := iceserve.NewTURNRESTAnswer(servers, now.Add(90*time.Minute+500*time.Millisecond), now, false)
	if err != nil {
		t.Fatal(err)
	}
	want := iceserve.TURNRESTAnswer{Username: "u1", Password: "p1", TTL: 5400, URIs: []string{
		"turn:turn.cloudflare.com:3478?transport=udp", "turn:turn.cloudflare.com:3478?transport=tcp", "turns:turn.cloudflare.com:5349?transport=tcp"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	got, _ = iceserve.NewTURNRESTAnswer(servers, now.Add(-time.Second), now, true)
	if got.TTL != 0 || len(got.URIs) != 4 {
		t.Errorf("expired, port 53 kept: ttl %d, %d URIs; want 0 and 4", got.TTL, len(got.URIs))
	}
	if _, err := iceserve.NewTURNRESTAnswer(servers[:1], now, now, false); !errors.Is(err, iceserve.ErrNoTURNCredential) {
		t.Errorf("STUN only: %v, want ErrNoTURNCredential", err)
	}
}
