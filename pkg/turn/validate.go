package turn

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Checks run before any I/O. They name the value and say how to fix it, and never echo a value
// longer than an identifier: a long one may be a credential passed in the wrong place. Lengths
// and positions count characters, not bytes, and a bad character is shown as a character.

const (
	accountIDLen = 32 // the 32 hex characters in the dashboard's URL
	keyIDLen     = 32
	keySecretLen = 64 // a TURN key's secret, per the spec

	// MaxICETTL is the longest lifetime Cloudflare gives ICE credentials: 48 hours (172800 seconds),
	// per the Realtime TURN FAQ (https://developers.cloudflare.com/realtime/turn/faq/).
	MaxICETTL = 48 * time.Hour

	// MaxCustomIdentifierLen bounds GenerateICEServersParams.CustomIdentifier, in characters.
	// Cloudflare documents no limit; this one keeps a request small and an analytics tag readable.
	MaxCustomIdentifierLen = 256
)

func checkAccountID(op, id string) error {
	const want = "Cloudflare account IDs are 32 hex characters, 0-9 and a-f (the one in the dashboard's URL)"
	n := utf8.RuneCountInString(id)
	switch {
	case id == "":
		return invalidArg(op, "account ID is empty: set AccountID, turn.WithAccountID or CLOUDFLARE_ACCOUNT_ID")
	case n > accountIDLen:
		// Not echoed: a longer value may be a token or key secret set in the wrong variable.
		return invalidArg(op, "account ID is %d characters long; %s", n, want)
	}
	if r, pos := firstBad(id, notHex); pos > 0 {
		return invalidArg(op, "account ID %q has %s at character %d; %s", id, describeRune(r), pos, want)
	}
	if n != accountIDLen {
		return invalidArg(op, "account ID %q is %d characters long; %s", id, n, want)
	}
	return nil
}

func checkKeyID(op, id string) error {
	switch msg := keyIDProblem(id); {
	case id == "":
		return invalidArg(op, "%s: pass the key's uid (32 characters), as listed by ListKeys", msg)
	case msg != "":
		return invalidArg(op, "%s", msg)
	}
	return nil
}

// keyIDProblem says what is wrong with a key ID, or "" when nothing is. Server-provided uids go
// through the same rules as the IDs callers pass.
func keyIDProblem(id string) string {
	n := utf8.RuneCountInString(id)
	switch {
	case id == "":
		return "key ID is empty"
	case n != keyIDLen:
		return fmt.Sprintf("key ID is %d characters long; TURN key IDs have exactly %d", n, keyIDLen)
	}
	if r, pos := firstBad(id, notAlnum); pos > 0 {
		return fmt.Sprintf("key ID %q has %s at character %d; it takes letters and digits only", id, describeRune(r), pos)
	}
	return ""
}

func checkKeySecret(op string, s Secret) error {
	if s.IsZero() {
		return invalidArg(op, "key secret is empty: pass the key's secret, returned once by CreateKey")
	}
	if msg := credentialProblem("key secret", s.Reveal()); msg != "" {
		return invalidArg(op, "%s", msg)
	}
	if n := utf8.RuneCountInString(s.Reveal()); n != keySecretLen {
		return invalidArg(op, "key secret is %d characters long; a TURN key's secret has exactly %d (the key field CreateKey returned, not the key's uid or an API token)", n, keySecretLen)
	}
	return nil
}

// credentialProblem says what is wrong with a token or key secret that goes into an
// Authorization header, or "" when nothing is. The value itself is never quoted; the offending
// character is, since white space or a control character reveals nothing.
func credentialProblem(what, v string) string {
	trimmed := strings.TrimRightFunc(v, unicode.IsSpace)
	switch {
	case strings.TrimSpace(v) == "":
		return what + " is empty or only white space"
	case strings.ContainsAny(v[len(trimmed):], "\r\n") && !hasBad(trimmed, notHeaderToken):
		return what + " ends with a newline, so it was probably read from a file or with $(cat ...): trim it"
	}
	if r, pos := firstBad(v, notHeaderToken); pos > 0 {
		return fmt.Sprintf("%s has %s at character %d; credentials are printable ASCII without white space: check how it was read or pasted", what, describeRune(r), pos)
	}
	return ""
}

// notHeaderToken reports characters that have no place in a credential: white space, control
// characters, and anything outside printable ASCII (a pasted curly quote, a zero-width space).
func notHeaderToken(r rune) bool { return r <= ' ' || r >= 0x7f }

func checkTTL(op string, ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return invalidArg(op, "TTL %v must be positive, e.g. 24*time.Hour", ttl)
	case ttl%time.Second != 0:
		return invalidArg(op, "TTL %v is not a whole number of seconds", ttl)
	case ttl > MaxICETTL:
		return invalidArg(op, "TTL %v is over Cloudflare's maximum of 48h (172800 seconds, per the Realtime TURN FAQ)", ttl)
	}
	return nil
}

// checkCustomIdentifier checks the optional analytics tag of a credential. It is not a secret,
// so a bad character is shown.
func checkCustomIdentifier(op, id string) error {
	if id == "" {
		return nil
	}
	if n := utf8.RuneCountInString(id); n > MaxCustomIdentifierLen {
		return invalidArg(op, "custom identifier is %d characters long; at most %d", n, MaxCustomIdentifierLen)
	}
	if r, pos := firstBad(id, notPrintable); pos > 0 {
		return invalidArg(op, "custom identifier has %s at character %d; it takes printable characters only", describeRune(r), pos)
	}
	return nil
}

func checkUsername(op, username string) error {
	switch {
	case username == "":
		return invalidArg(op, "username is empty: pass the username of the TURN entry to revoke")
	case strings.ContainsAny(username, "/?#"):
		// Not echoed: the username is part of a credential.
		return invalidArg(op, "username contains '/', '?' or '#', which no ICE username has")
	case username == "." || username == "..":
		return invalidArg(op, "username %q is a path step, not an ICE username", username)
	}
	if r, pos := firstBad(username, notHeaderToken); pos > 0 {
		return invalidArg(op, "username has %s at character %d, which no ICE username has", describeRune(r), pos)
	}
	return nil
}

// checkUserAgent refuses what would break the User-Agent header or forge another one.
func checkUserAgent(op, product string) error {
	if r, pos := firstBad(product, notPrintable); pos > 0 {
		return invalidArg(op, "user agent has %s at character %d; it takes printable characters only", describeRune(r), pos)
	}
	return nil
}

func notHex(r rune) bool {
	return !('a' <= r && r <= 'f' || 'A' <= r && r <= 'F' || '0' <= r && r <= '9')
}

func notAlnum(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
}

// notPrintable reports control, format (zero-width), invalid and non-graphic characters; a
// space is printable.
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// notUTF8 stands for a byte that is not UTF-8 in what firstBad returns.
const notUTF8 rune = -1

// firstBad returns the first character of s that is not UTF-8 or for which bad is true, and its
// 1-based character position; the position is 0 when there is none.
func firstBad(s string, bad func(rune) bool) (rune, int) {
	for pos := 1; s != ""; pos++ {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			return notUTF8, pos
		}
		if bad(r) {
			return r, pos
		}
		s = s[size:]
	}
	return 0, 0
}

func hasBad(s string, bad func(rune) bool) bool {
	_, pos := firstBad(s, bad)
	return pos > 0
}

// describeRune names a character for an error message: a few by name, the rest quoted as the
// character itself ('ю'), or escaped when it cannot be seen ('\x00', '\u200b').
func describeRune(r rune) string {
	switch r {
	case '\n':
		return "a newline"
	case '\r':
		return "a carriage return"
	case '\t':
		return "a tab"
	case ' ':
		return "a space"
	case notUTF8:
		return "a byte that is not UTF-8"
	}
	return fmt.Sprintf("%q", r)
}

// account resolves the account of a call: the explicit one, else the client's default.
func (c *Client) account(op, id string) (string, error) {
	if id == "" {
		id = c.cfg.accountID
	}
	return id, checkAccountID(op, id)
}

// apiToken returns the API token, or ErrNoAPIToken.
func (c *Client) apiToken(op string) (Secret, error) {
	if c.cfg.token.IsZero() {
		return Secret{}, &callError{msg: "turn: " + op + ": no API token: pass turn.WithAPIToken or set CLOUDFLARE_API_TOKEN", class: ErrNoAPIToken}
	}
	return c.cfg.token, nil
}
