package iceserve

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Limits of the coturn provider.
const (
	// MaxCoturnSecrets is how many shared secrets a secret file may hold.
	MaxCoturnSecrets = 16
	// MaxCoturnSecretBytes caps one secret's length; coturn itself has no use for longer ones.
	MaxCoturnSecretBytes = 1024
	maxCoturnSecretFile  = MaxCoturnSecrets * (MaxCoturnSecretBytes + 64)
	maxCoturnURLs        = 16
	coturnPseudonymBytes = 12 // 96 bits of HMAC: 16 characters of base64
)

// ErrCoturnConfig is matched by every error of NewCoturn and ReadCoturnSecrets.
var ErrCoturnConfig = errors.New("coturn provider")

// CoturnConfig configures a Coturn provider.
type CoturnConfig struct {
	// Secrets are coturn's static-auth-secret values (use-auth-secret mode), newest first. The
	// first mints; list the old one after it while coturn still accepts both, so a secret can be
	// rotated without a gap (coturn accepts a credential made with any of its secrets).
	Secrets []turn.Secret
	// URLs are the coturn server's turn: and turns: URLs, e.g. "turn:turn.example.org:3478?transport=udp".
	URLs []string
	// TTL is the lifetime of a minted credential (required, from 1s to 48h): coturn refuses an
	// allocation or refresh after the expiry written in the username.
	TTL time.Duration
	// PseudonymKey keys the HMAC that turns an identity into the username's pseudonym, so coturn's
	// logs and its peers never see the identity. Default: derived from the first secret, so a
	// rotation changes the pseudonyms too.
	PseudonymKey []byte
}

// Coturn mints credentials for a self-hosted coturn in its shared-secret mode (use-auth-secret),
// locally, with no call to anything: username "<unix expiry>:<pseudonym>", password
// base64(HMAC-SHA1(secret, username)). It is safe for concurrent use.
type Coturn struct {
	secret       []byte
	pseudonymKey []byte
	urls         []string
	ttl          time.Duration
}

// NewCoturn checks cfg and returns a provider. Its errors match ErrCoturnConfig and never hold a secret.
func NewCoturn(cfg CoturnConfig) (*Coturn, error) {
	switch {
	case len(cfg.Secrets) == 0:
		return nil, fmt.Errorf("%w: no shared secret; give coturn's static-auth-secret", ErrCoturnConfig)
	case len(cfg.Secrets) > MaxCoturnSecrets:
		return nil, fmt.Errorf("%w: %d secrets, more than %d", ErrCoturnConfig, len(cfg.Secrets), MaxCoturnSecrets)
	case cfg.TTL < time.Second || cfg.TTL > turn.MaxICETTL:
		return nil, fmt.Errorf("%w: TTL %v must be from 1s to %v", ErrCoturnConfig, cfg.TTL, turn.MaxICETTL)
	case len(cfg.URLs) == 0:
		return nil, fmt.Errorf("%w: no URLs; give the coturn server's turn: URLs, e.g. turn:turn.example.org:3478?transport=udp", ErrCoturnConfig)
	case len(cfg.URLs) > maxCoturnURLs:
		return nil, fmt.Errorf("%w: %d URLs, more than %d", ErrCoturnConfig, len(cfg.URLs), maxCoturnURLs)
	}
	for i, s := range cfg.Secrets {
		if err := checkCoturnSecret(s.Reveal()); err != nil {
			return nil, fmt.Errorf("%w: secret %d %v", ErrCoturnConfig, i+1, err)
		}
	}
	seen := make(map[string]string, len(cfg.URLs))
	for _, u := range cfg.URLs {
		if err := checkTURNURL(u); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCoturnConfig, err)
		}
		e := turnEndpoint(u)
		if first, dup := seen[e]; dup {
			return nil, fmt.Errorf("%w: URLs %q and %q reach the same server; list it once", ErrCoturnConfig, first, u)
		}
		seen[e] = u
		if host := strings.Split(strings.TrimPrefix(strings.TrimPrefix(e, "turns:"), "turn:"), ":")[0]; host == "cloudflare.com" || strings.HasSuffix(host, ".cloudflare.com") {
			return nil, fmt.Errorf("%w: URL %q is Cloudflare's; the coturn URLs name your own TURN server", ErrCoturnConfig, u)
		}
	}
	c := &Coturn{
		secret:       []byte(cfg.Secrets[0].Reveal()),
		pseudonymKey: cfg.PseudonymKey,
		urls:         append([]string(nil), cfg.URLs...),
		ttl:          cfg.TTL,
	}
	if len(c.pseudonymKey) == 0 {
		m := hmac.New(sha256.New, c.secret)
		m.Write([]byte("cfturn coturn pseudonym key"))
		c.pseudonymKey = m.Sum(nil)
	}
	return c, nil
}

func checkCoturnSecret(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxCoturnSecretBytes:
		return fmt.Errorf("is over %d bytes", MaxCoturnSecretBytes)
	case strings.TrimSpace(s) != s:
		return errors.New("starts or ends with white space")
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return errors.New("holds a control character or a space")
		}
	}
	return nil
}

// checkTURNURL accepts a turn: or turns: URL with a host and an optional ?transport=udp|tcp.
func checkTURNURL(u string) error {
	scheme, rest, _ := strings.Cut(u, ":")
	if scheme != "turn" && scheme != "turns" {
		return fmt.Errorf("URL %q is not a turn: or turns: URL", u)
	}
	hostPort, query, _ := strings.Cut(rest, "?")
	if hostPort == "" || strings.ContainsAny(hostPort, "/@ \t\r\n") {
		return fmt.Errorf("URL %q: want turn:host[:port][?transport=udp|tcp]", u)
	}
	if query != "" && query != "transport=udp" && query != "transport=tcp" {
		return fmt.Errorf("URL %q: the query must be ?transport=udp or ?transport=tcp", u)
	}
	return nil
}

// Mint returns a credential for identity valid for the provider's TTL from now, as one ICE
// server entry, and its expiry. The username carries a pseudonym of identity, never identity.
func (c *Coturn) Mint(identity string, now time.Time) (turn.ICEServer, time.Time) {
	expires := now.Add(c.ttl).Truncate(time.Second)
	username := strconv.FormatInt(expires.Unix(), 10) + ":" + c.Pseudonym(identity)
	m := hmac.New(sha1.New, c.secret)
	m.Write([]byte(username))
	password := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return turn.ICEServer{URLs: append([]string(nil), c.urls...), Username: username, Credential: turn.NewSecret(password)}, expires
}

// Pseudonym returns the name identity goes by in coturn usernames: 16 characters of a keyed
// HMAC, the same for one identity while the key stays, telling nothing about the identity.
func (c *Coturn) Pseudonym(identity string) string {
	m := hmac.New(sha256.New, c.pseudonymKey)
	m.Write([]byte(identity))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:coturnPseudonymBytes])
}

// URLs returns the coturn server's URLs.
func (c *Coturn) URLs() []string { return append([]string(nil), c.urls...) }

// TTL returns the lifetime of minted credentials.
func (c *Coturn) TTL() time.Duration { return c.ttl }

// ReadCoturnSecrets reads shared secrets from r: one a line, newest (the one that mints) first;
// blank lines and lines starting with '#' are skipped, and a line may be written as coturn's own
// "static-auth-secret=..." setting, so the lines of turnserver.conf can be shared. An empty
// file, or one over the limits, is an error; errors name the line, never its content.
func ReadCoturnSecrets(r io.Reader) ([]turn.Secret, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCoturnSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the secrets: %v", ErrCoturnConfig, err)
	}
	if len(data) > maxCoturnSecretFile {
		return nil, fmt.Errorf("%w: the secret file is over %d bytes", ErrCoturnConfig, maxCoturnSecretFile)
	}
	var secrets []turn.Secret
	for i, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(s, "static-auth-secret"); ok {
			v = strings.TrimSpace(v)
			if !strings.HasPrefix(v, "=") {
				return nil, fmt.Errorf("%w: line %d: want static-auth-secret=SECRET or the secret alone", ErrCoturnConfig, i+1)
			}
			s = strings.TrimSpace(v[1:])
		}
		if err := checkCoturnSecret(s); err != nil {
			return nil, fmt.Errorf("%w: line %d: the secret %v", ErrCoturnConfig, i+1, err)
		}
		secrets = append(secrets, turn.NewSecret(s))
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret in the file; write coturn's static-auth-secret on a line of its own", ErrCoturnConfig)
	}
	if len(secrets) > MaxCoturnSecrets {
		return nil, fmt.Errorf("%w: %d secrets, more than %d", ErrCoturnConfig, len(secrets), MaxCoturnSecrets)
	}
	return secrets, nil
}

// ReadCoturnSecretFile is ReadCoturnSecrets on the file at path. An unreadable file is an error
// naming the path.
func ReadCoturnSecretFile(path string) ([]turn.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: secret file: %v", ErrCoturnConfig, err)
	}
	defer f.Close()
	secrets, err := ReadCoturnSecrets(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return secrets, nil
}

// turnEndpoint is what a TURN URL reaches: scheme, lower-case host, port and transport, with
// the defaults of RFC 7065 filled in, so two spellings of one server compare equal.
func turnEndpoint(u string) string {
	scheme, rest, _ := strings.Cut(u, ":")
	hostPort, query, _ := strings.Cut(rest, "?")
	transport := strings.TrimPrefix(query, "transport=")
	host, port := hostPort, ""
	if i := strings.LastIndexByte(hostPort, ':'); i >= 0 && !strings.HasSuffix(hostPort, "]") {
		host, port = hostPort[:i], hostPort[i+1:]
	}
	switch {
	case port == "" && scheme == "turns":
		port = "5349"
	case port == "":
		port = "3478"
	}
	switch {
	case transport == "" && scheme == "turns":
		transport = "tcp"
	case transport == "":
		transport = "udp"
	}
	return scheme + ":" + strings.ToLower(strings.TrimSuffix(host, ".")) + ":" + port + "?" + transport
}

// OverlappingURLs returns the URLs of b that reach a server a also lists (same scheme, host,
// port and transport, however spelled). A merge of providers must have none: a client would try
// one provider's credential on the other's server.
func OverlappingURLs(a, b []string) []string {
	seen := make(map[string]bool, len(a))
	for _, u := range a {
		seen[turnEndpoint(u)] = true
	}
	var out []string
	for _, u := range b {
		if seen[turnEndpoint(u)] {
			out = append(out, u)
		}
	}
	return out
}
