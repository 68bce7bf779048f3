package iceserve_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/iceserve"
)

// Whatever a caller sends, ParseTURNRESTRequest answers without panicking, accepts only a
// request that carries the key, and never hands on a username over the bound or with a control
// character.
func FuzzParseTURNRESTRequest(f *testing.F) {
	f.Add("GET", "service=turn&username=alice&key="+restKey, "", "")
	f.Add("POST", "service=turn&api="+restKey, "service=turn&username=bob&api="+restKey, "")
	f.Add("GET", "service=turn&username=%00", "", "Bearer "+restKey)
	f.Add("POST", "", "key=%zz", "Bearer")
	keys, err := iceserve.NewTURNRESTKeys(turn.NewSecret(restKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, query, body, auth string) {
		if method != "GET" && method != "POST" && method != "PUT" {
			method = "GET"
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: "/turn-rest", RawQuery: query}, Header: http.Header{}, Body: http.NoBody}
		if body != "" {
			r.Body = readCloser{strings.NewReader(body)}
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		username, refusal := iceserve.ParseTURNRESTRequest(r, keys, 32)
		if refusal != nil {
			if refusal.Status < 400 || refusal.Status > 499 || strings.Contains(refusal.Message, restKey) {
				t.Fatalf("refusal %+v", refusal)
			}
			return
		}
		unq, _ := url.QueryUnescape(query)
		unb, _ := url.QueryUnescape(body)
		if !strings.Contains(query+" "+body+" "+auth+" "+unq+" "+unb, restKey) {
			t.Fatalf("accepted without the key: %q %q %q", query, body, auth)
		}
		if len(username) > 32 || !utf8.ValidString(username) || strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("username %q passed", username)
		}
	})
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
