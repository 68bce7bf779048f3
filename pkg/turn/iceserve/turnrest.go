package iceserve

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Limits of the TURN REST API endpoint.
const (
	// MinTURNRESTKeyBytes and MaxTURNRESTKeyBytes bound an API key's length. Janus sends the key
	// in a 256-byte buffer with its parameter name, so a longer key would be cut.
	MinTURNRESTKeyBytes = 16
	MaxTURNRESTKeyBytes = 200
	// MaxTURNRESTKeys is how many keys may be accepted at once, for rotation.
	MaxTURNRESTKeys = 8
	// MaxTURNRESTRequestBytes bounds the query and, for POST, the form body, each.
	MaxTURNRESTRequestBytes = 4096
)

// ErrTURNRESTConfig is matched by the errors of NewTURNRESTKeys and ReadTURNRESTKeys.
var ErrTURNRESTConfig = errors.New("TURN REST API")

// TURNRESTKeys are the API keys a TURN REST API caller may present, kept only as SHA-256
// digests and compared in constant time. Several keys are accepted at once so a key can be
// rotated: give the new one to the callers, then drop the old.
type TURNRESTKeys struct {
	digests [][sha256.Size]byte
}

// NewTURNRESTKeys checks keys (each MinTURNRESTKeyBytes to MaxTURNRESTKeyBytes printable ASCII
// characters) and returns them ready to compare. Errors never hold a key.
func NewTURNRESTKeys(keys ...turn.Secret) (*TURNRESTKeys, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no API key; make one with e.g. `openssl rand -hex 32`", ErrTURNRESTConfig)
	}
	if len(keys) > MaxTURNRESTKeys {
		return nil, fmt.Errorf("%w: %d API keys, more than %d", ErrTURNRESTConfig, len(keys), MaxTURNRESTKeys)
	}
	k := &TURNRESTKeys{}
	for i, key := range keys {
		s := key.Reveal()
		if len(s) < MinTURNRESTKeyBytes || len(s) > MaxTURNRESTKeyBytes {
			return nil, fmt.Errorf("%w: API key %d is %d bytes; it must be %d to %d, e.g. `openssl rand -hex 32`", ErrTURNRESTConfig, i+1, len(s), MinTURNRESTKeyBytes, MaxTURNRESTKeyBytes)
		}
		for _, c := range []byte(s) {
			if c < 0x21 || c > 0x7e {
				return nil, fmt.Errorf("%w: API key %d holds a space, a control or a non-ASCII character", ErrTURNRESTConfig, i+1)
			}
		}
		k.digests = append(k.digests, sha256.Sum256([]byte(s)))
	}
	return k, nil
}

// ReadTURNRESTKeys reads API keys from r, one a line; blank lines and lines starting with '#'
// are skipped.
func ReadTURNRESTKeys(r io.Reader) (*TURNRESTKeys, error) {
	const maxFile = MaxTURNRESTKeys * (MaxTURNRESTKeyBytes + 64)
	lr := &io.LimitedReader{R: r, N: maxFile + 1}
	sc := bufio.NewScanner(lr)
	var keys []turn.Secret
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, turn.NewSecret(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: reading the API keys: %v", ErrTURNRESTConfig, err)
	}
	if lr.N == 0 {
		// Cut short, the last key read would be a prefix of the real one: refuse the file.
		return nil, fmt.Errorf("%w: the API key file is over %d bytes", ErrTURNRESTConfig, maxFile)
	}
	return NewTURNRESTKeys(keys...)
}

// ReadTURNRESTKeyFile is ReadTURNRESTKeys on the file at path.
func ReadTURNRESTKeyFile(path string) (*TURNRESTKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: API key file: %v", ErrTURNRESTConfig, err)
	}
	defer f.Close()
	k, err := ReadTURNRESTKeys(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Match reports whether presented is one of the keys. It takes the same time whichever key
// matches, or none, and whatever the length of presented.
func (k *TURNRESTKeys) Match(presented string) bool {
	d := sha256.Sum256([]byte(presented))
	ok := 0
	for i := range k.digests {
		ok |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return ok == 1
}

// TURNRESTRefusal is why a TURN REST API request was refused: the HTTP status to answer, the
// reason (a metrics label) and a message for the caller that holds no secret.
type TURNRESTRefusal struct {
	Status  int
	Reason  string
	Message string
}

func (e *TURNRESTRefusal) Error() string { return e.Message }

func restRefusal(status int, reason, format string, args ...any) *TURNRESTRefusal {
	return &TURNRESTRefusal{Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ParseTURNRESTRequest reads a TURN REST API request (draft-uberti-behave-turn-rest-00, as
// coturn and Janus speak it): GET or POST with service=turn, an optional username=, and the API
// key as key= or Janus's api=, each in the query or a form body (Janus's POST sends them in
// both), or the key as "Authorization: Bearer <key>". It returns the username, "" when none was
// given. The key is checked first, so a caller without it learns nothing else; a parameter given
// twice with different values is refused, as is a username over maxUsername bytes, with a
// control character, or not UTF-8.
func ParseTURNRESTRequest(r *http.Request, keys *TURNRESTKeys, maxUsername int) (string, *TURNRESTRefusal) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return "", restRefusal(http.StatusMethodNotAllowed, "method", "use GET or POST")
	}
	if len(r.URL.RawQuery) > MaxTURNRESTRequestBytes {
		return "", restRefusal(http.StatusRequestURITooLong, "bad_request", "query over %d bytes", MaxTURNRESTRequestBytes)
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", restRefusal(http.StatusBadRequest, "bad_request", "malformed query: want name=value pairs joined by &")
	}
	var form url.Values
	if r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody {
		var refusal *TURNRESTRefusal
		if form, refusal = readForm(r); refusal != nil {
			return "", refusal
		}
	}
	param := func(name string) (string, *TURNRESTRefusal) {
		values := append(query[name], form[name]...)
		for _, v := range values[min(1, len(values)):] {
			if v != values[0] {
				return "", restRefusal(http.StatusBadRequest, "bad_request", "%s given twice with different values", name)
			}
		}
		if len(values) == 0 {
			return "", nil
		}
		return values[0], nil
	}
	key, refusal := param("key")
	if refusal != nil {
		return "", refusal
	}
	api, refusal := param("api")
	if refusal != nil {
		return "", refusal
	}
	bearer, hasBearer := bearerToken(r)
	presented := ""
	for _, k := range []string{key, api, bearer} {
		if k == "" {
			continue
		}
		if presented != "" && k != presented {
			return "", restRefusal(http.StatusBadRequest, "bad_request", "key, api and the bearer token differ; send one key")
		}
		presented = k
	}
	switch {
	case presented == "" && !hasBearer:
		return "", restRefusal(http.StatusUnauthorized, "unauthorized", "API key missing: send key= (or api=) or Authorization: Bearer")
	case !keys.Match(presented):
		return "", restRefusal(http.StatusUnauthorized, "unauthorized", "wrong API key")
	}
	service, refusal := param("service")
	if refusal != nil {
		return "", refusal
	}
	if service != "turn" {
		return "", restRefusal(http.StatusBadRequest, "bad_service", "service must be turn")
	}
	username, refusal := param("username")
	if refusal != nil {
		return "", refusal
	}
	if len(username) > maxUsername {
		return "", restRefusal(http.StatusBadRequest, "identity_too_long", "username over %d bytes", maxUsername)
	}
	if !printable(username) {
		return "", restRefusal(http.StatusBadRequest, "bad_request", "username must be UTF-8 without control characters")
	}
	return username, nil
}

// readForm reads a POST's form body, at most MaxTURNRESTRequestBytes.
func readForm(r *http.Request) (url.Values, *TURNRESTRefusal) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, restRefusal(http.StatusUnsupportedMediaType, "bad_request", "a POST body must be application/x-www-form-urlencoded")
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxTURNRESTRequestBytes+1))
	switch {
	case err != nil:
		return nil, restRefusal(http.StatusBadRequest, "bad_request", "reading the body failed")
	case len(body) > MaxTURNRESTRequestBytes:
		return nil, restRefusal(http.StatusRequestEntityTooLarge, "bad_request", "body over %d bytes", MaxTURNRESTRequestBytes)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, restRefusal(http.StatusBadRequest, "bad_request", "malformed form body: want name=value pairs joined by &")
	}
	return form, nil
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header, and whether the
// request had an Authorization header at all.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}

// TURNRESTAnswer is the answer of a TURN REST API, and of Matrix's /voip/turnServer, which has
// the same shape: one username and password for every URI, and the seconds they have left.
type TURNRESTAnswer struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	TTL      int64    `json:"ttl"`
	URIs     []string `json:"uris"`
}

// ErrNoTURNCredential is returned by NewTURNRESTAnswer for servers with no usable TURN entry.
var ErrNoTURNCredential = errors.New("no TURN server with a username and credential to answer")

// NewTURNRESTAnswer picks the first entry of servers that has a username and a credential and
// answers its turn: and turns: URIs (STUN entries and, unless keepPort53, port-53 URIs dropped,
// as browsers block that port), with ttl the whole seconds from now until expires.
func NewTURNRESTAnswer(servers []turn.ICEServer, expires, now time.Time, keepPort53 bool) (TURNRESTAnswer, error) {
	for _, s := range servers {
		if s.Username == "" || s.Credential.IsZero() {
			continue
		}
		a := TURNRESTAnswer{Username: s.Username, Password: s.Credential.Reveal(), TTL: max(0, int64(expires.Sub(now)/time.Second))}
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				continue
			}
			if !keepPort53 && onPort53(u) {
				continue
			}
			a.URIs = append(a.URIs, u)
		}
		if len(a.URIs) > 0 {
			return a, nil
		}
	}
	return TURNRESTAnswer{}, ErrNoTURNCredential
}

func onPort53(u string) bool {
	hostPort, _, _ := strings.Cut(u, "?")
	i := strings.LastIndexByte(hostPort, ':')
	return i >= 0 && hostPort[i+1:] == "53"
}
