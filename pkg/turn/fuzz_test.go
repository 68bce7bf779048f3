package turn

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/gen/calls"
	"github.com/cfturn/cfturn/gen/callsclient"
)

// White-box fuzz targets: decoding what a server sends, checking what a caller passes, and
// formatting errors must never panic, never accept garbage as success, and never leak a secret.

const fuzzSecret = "fuzz-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(200, "application/json", `{"success":true,"errors":[],"messages":[],"result":{"uid":"2a95132c15732412d22c1476fa83f27a","name":"n","created":"2024-01-01T00:00:00Z","modified":"2024-01-01T00:00:00Z"}}`)
	f.Add(404, "application/json", `{"success":false,"errors":[{"code":10006,"message":"not found `+fuzzSecret+`"}],"messages":[]}`)
	f.Add(502, "text/html", "<html>"+fuzzSecret+"</html>")
	f.Add(200, "application/json", `{"success":true,"result":null}`)
	f.Add(200, "", "")
	f.Fuzz(func(t *testing.T, status int, contentType, body string) {
		if status < 100 || status > 599 {
			status = 200 + (status&0xff)%400
		}
		res := &response{status: status, header: http.Header{"Content-Type": {contentType}, "Cf-Ray": {"r"}}, body: []byte(body)}
		secrets := []Secret{NewSecret(fuzzSecret)}
		var err error
		if status >= 200 && status < 300 {
			var k calls.TurnKey
			k, err = decodeEnvelope[calls.TurnKey](opGetKey, res, secrets)
			if err == nil && !saysSuccess(body) {
				t.Fatalf("accepted a body without success:true: %q -> %+v", body, k)
			}
		} else {
			err = statusError(opGetKey, res, secrets)
		}
		if err == nil {
			return
		}
		if msg := err.Error(); strings.Contains(msg, fuzzSecret) {
			t.Fatalf("secret in error: %s", msg)
		}
	})
}

// saysSuccess reports whether body is a JSON object whose success member is true. Member names
// match case-insensitively, as encoding/json matches them.
func saysSuccess(body string) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &fields) != nil {
		return false
	}
	for k, v := range fields {
		if strings.EqualFold(k, "success") && string(v) == "true" {
			return true
		}
	}
	return false
}

func FuzzValidateIDs(f *testing.F) {
	for _, s := range []string{"", "023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a", "a/b", "ü", strings.Repeat("a", 33)} {
		f.Add(s)
	}
	account := regexp.MustCompile(`^[A-Fa-f0-9]{32}$`)
	key := regexp.MustCompile(`^[A-Za-z0-9]{32}$`)
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := checkAccountID("op", id) == nil, account.MatchString(id); got != want {
			t.Fatalf("checkAccountID(%q) accepted=%v, want %v", id, got, want)
		}
		if got, want := checkKeyID("op", id) == nil, key.MatchString(id); got != want {
			t.Fatalf("checkKeyID(%q) accepted=%v, want %v", id, got, want)
		}
		if err := checkAccountID("op", id); err != nil && utf8.RuneCountInString(id) > accountIDLen && strings.Contains(err.Error(), id) {
			t.Fatalf("a long account ID was echoed: %v", err)
		}
		if err := checkKeyID("op", id); err != nil && utf8.RuneCountInString(id) > keyIDLen && strings.Contains(err.Error(), id) {
			t.Fatalf("a long value was echoed: %v", err)
		}
	})
}

func FuzzValidateTTL(f *testing.F) {
	for _, d := range []int64{0, -1, 1, int64(time.Second), int64(1500 * time.Millisecond), int64(48 * time.Hour), int64(48*time.Hour + time.Second)} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		ttl := time.Duration(n)
		ok := checkTTL("op", ttl) == nil
		if want := ttl > 0 && ttl%time.Second == 0 && ttl <= 48*time.Hour; ok != want {
			t.Fatalf("checkTTL(%v) accepted=%v, want %v", ttl, ok, want)
		}
	})
}

func FuzzErrorText(f *testing.F) {
	f.Add(403, "Authentication error", 10000, "8f1e-SJC", "<html>"+fuzzSecret)
	f.Add(0, "", 0, "", "")
	f.Add(599, "line\nbreak", -1, "ray\x00", "\xff\xfe")
	f.Fuzz(func(t *testing.T, status int, message string, code int, ray, body string) {
		e := &APIError{Operation: "get key", StatusCode: status, RayID: ray,
			Errors:  []Message{{Code: code, Message: scrub(message, []Secret{NewSecret(fuzzSecret)})}},
			Excerpt: excerpt([]byte(body), []Secret{NewSecret(fuzzSecret)})}
		msg := e.Error()
		if !strings.HasPrefix(msg, "turn: get key: ") {
			t.Fatalf("error text %q", msg)
		}
		if strings.Contains(msg, fuzzSecret) {
			t.Fatalf("secret in %q", msg)
		}
		if !utf8.ValidString(e.Excerpt) || utf8.RuneCountInString(e.Excerpt) > excerptLen+1 {
			t.Fatalf("excerpt %q is not short, valid text", e.Excerpt)
		}
	})
}

// A credential is accepted exactly when it is printable ASCII without spaces, and an error about
// one never quotes it.
func FuzzCredentialCheck(f *testing.F) {
	for _, s := range []string{"", " ", "tok", "tok\n", "tok en", "tok\x00", "“tok”", "tok\u200b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		msg := credentialProblem("API token", v)
		want := v != "" && strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) < 0 && utf8.ValidString(v)
		if (msg == "") != want {
			t.Fatalf("credentialProblem(%q) = %q, want accepted=%v", v, msg, want)
		}
		if msg != "" && len(strings.TrimSpace(v)) >= 8 && strings.Contains(msg, strings.TrimSpace(v)) {
			t.Fatalf("%q quotes the value %q", msg, v)
		}
	})
}

// However a server disguises an echoed secret with characters no credential holds (white space,
// control, zero-width, combining or other non-ASCII characters), and wherever the cuts fall, no
// run of 4 of the secret's characters reaches an excerpt or a cleaned message.
func FuzzExcerptHidesSecret(f *testing.F) {
	f.Add("", "", 0, 0)
	f.Add("«", "\u200b", 3, 100)
	f.Add(": ", " ", 1, 470)
	f.Add("<>", "\x00\n", 2, 119)
	f.Fuzz(func(t *testing.T, prefix, sep string, every, pad int) {
		// The prefix shares no character with the secret, so a piece of it in the output can only
		// come from the secret; the separator is something a credential cannot hold.
		if strings.ContainsFunc(prefix, func(r rune) bool { return strings.ContainsRune(fuzzSecret, r) }) ||
			strings.ContainsFunc(sep, func(r rune) bool { return r > ' ' && r < 0x7f }) {
			return
		}
		every = 1 + abs(every)%8
		pad = abs(pad) % 700
		var b strings.Builder
		b.WriteString(strings.Repeat("~", pad))
		b.WriteString(prefix)
		for i, r := range fuzzSecret {
			b.WriteRune(r)
			if i%every == 0 {
				b.WriteString(sep)
			}
		}
		b.WriteString(prefix)
		secrets := []Secret{NewSecret(fuzzSecret)}
		for _, out := range []string{excerpt([]byte(b.String()), secrets), clean(b.String(), secrets, messageLen, false)} {
			var proj strings.Builder
			for _, r := range strings.ReplaceAll(out, redacted, "") {
				if r > ' ' && r < 0x7f {
					proj.WriteRune(r)
				}
			}
			for i := 0; i+4 <= len(fuzzSecret); i++ {
				if strings.Contains(proj.String(), fuzzSecret[i:i+4]) {
					t.Fatalf("%q of the secret in %q", fuzzSecret[i:i+4], out)
				}
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// builderBases are API roots with path prefixes, with and without the trailing slash the client
// keeps, and one whose prefix is itself escaped.
var builderBases = []string{
	"https://api.cloudflare.com/client/v4",
	"http://127.0.0.1:8787/some/prefix/client/v4/",
	"http://[::1]:8787/with%20space/v1/",
}

// checkBuiltURL checks a request from the generated builders: the base's path prefix is kept, and
// each parameter fills exactly its own path segment of the spec's template, decoded back as given.
func checkBuiltURL(t *testing.T, base string, op *operation, req *http.Request, params ...string) {
	t.Helper()
	if req.Method != op.Method {
		t.Fatalf("%s: method %s, the spec says %s", op.name, req.Method, op.Method)
	}
	prefix, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(req.URL.EscapedPath(), prefix.EscapedPath()+"/")
	if !ok || req.URL.Host != prefix.Host {
		t.Fatalf("%s: %s lost the base URL %s", op.name, req.URL, base)
	}
	got := strings.Split(rest, "/")
	want := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
	if len(got) != len(want) {
		t.Fatalf("%s: %s has %d segments after the base, the template %s has %d", op.name, req.URL, len(got), op.Path, len(want))
	}
	for i, seg := range want {
		if !strings.HasPrefix(seg, "{") {
			if got[i] != seg {
				t.Fatalf("%s: segment %d is %q, want %q", op.name, i, got[i], seg)
			}
			continue
		}
		v, err := url.PathUnescape(got[i])
		if err != nil || v != params[0] {
			t.Fatalf("%s: segment %s is %q, decoding to %q (%v), want %q", op.name, seg, got[i], v, err, params[0])
		}
		if got[i] == "." || got[i] == ".." {
			t.Fatalf("%s: parameter %q left as a dot segment", op.name, params[0])
		}
		params = params[1:]
	}
}

// The generated request builders keep the base URL's path prefix and escape every parameter into
// its own segment, whatever it holds: validation refuses most of these before a request is built,
// and the builders do not rely on it.
func TestGeneratedBuildersKeepPrefixAndEscape(t *testing.T) {
	const acct, key = "023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a"
	for _, base := range builderBases {
		req, err := callsclient.NewListTurnKeysRequest(base, acct)
		if err != nil {
			t.Fatal(err)
		}
		checkBuiltURL(t, base, opListKeys, req, acct)
		req, err = callsclient.NewUpdateTurnKeyRequest(base, acct, key, calls.TurnKeyUpdateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		checkBuiltURL(t, base, opUpdateKey, req, acct, key)
		if req.Header.Get("Content-Type") != "application/json" || req.GetBody == nil {
			t.Errorf("update: Content-Type %q, GetBody set %v", req.Header.Get("Content-Type"), req.GetBody != nil)
		}
		for _, username := range []string{"1700000000:user", "user name/ü%?#", "a%2Fb", ".", "..", "...", "a;b,c"} {
			req, err := callsclient.NewRevokeIceCredentialRequest(base, key, username)
			if err != nil {
				t.Fatal(err)
			}
			checkBuiltURL(t, base, opRevokeICE, req, key, username)
		}
	}
}

func FuzzBuiltURL(f *testing.F) {
	f.Add("023e105f4ecef8ad9ca31a8372d0c353", "2a95132c15732412d22c1476fa83f27a", "1700000000:user")
	f.Add("a", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "user name/ü%?#")
	f.Add("0", "00000000000000000000000000000000", "..")
	f.Fuzz(func(t *testing.T, acct, key, username string) {
		if !utf8.ValidString(acct + key + username) {
			return // the builders take what validation lets through, and that is valid UTF-8
		}
		for _, base := range builderBases {
			req, err := callsclient.NewDeleteTurnKeyRequest(base, acct, key)
			if err != nil {
				t.Fatalf("delete %q %q: %v", acct, key, err)
			}
			checkBuiltURL(t, base, opDeleteKey, req, acct, key)
			req, err = callsclient.NewRevokeIceCredentialRequest(base, key, username)
			if err != nil {
				t.Fatalf("revoke %q %q: %v", key, username, err)
			}
			checkBuiltURL(t, base, opRevokeICE, req, key, username)
		}
	})
}

// FuzzRedactBody: whatever surrounds an echo of a secret, and however the echo is written, the
// body handed to Do's check holds it neither as it is, nor once invisible characters are dropped,
// nor once it is decoded as the inside of a JSON string.
func FuzzRedactBody(f *testing.F) {
	f.Add(`{"echo":"`, `"}`, uint8(0))
	f.Add(`<p>`, `</p>`, uint8(1))
	f.Add(`\`, `\u00`, uint8(2))
	f.Add(`"\\`, `\n`, uint8(3))
	f.Fuzz(func(t *testing.T, before, after string, form uint8) {
		var echo strings.Builder
		for i, r := range fuzzSecret {
			switch {
			case form%4 == 1 && i%2 == 0:
				fmt.Fprintf(&echo, `\u%04X`, r)
			case form%4 == 2 && i > 0:
				echo.WriteString("\u200b")
			case form%4 == 3 && i == len(fuzzSecret)/2:
				echo.WriteString(`\n `)
			}
			echo.WriteRune(r)
		}
		got := string(redactBody([]byte(before+echo.String()+after), []Secret{NewSecret(fuzzSecret)}))
		visible := strings.Map(func(r rune) rune {
			if r <= ' ' || r >= 0x7f {
				return -1
			}
			return r
		}, got)
		if strings.Contains(visible, fuzzSecret) {
			t.Fatalf("the secret is in %q", got)
		}
		var decoded string
		if json.Unmarshal([]byte(`"`+got+`"`), &decoded) == nil && strings.Contains(decoded, fuzzSecret) {
			t.Fatalf("the secret is in %q decoded as JSON: %q", got, decoded)
		}
	})
}
