package turn

import (
	"strings"
	"time"
)

// Checks run before any I/O. They name the value and say how to fix it, and never echo a value
// longer than an identifier: a long one may be a credential passed in the wrong place.

const (
	accountIDMaxLen = 32
	keyIDLen        = 32
)

func checkAccountID(op, id string) error {
	switch {
	case id == "":
		return invalidArg(op, "account ID is empty: set AccountID, turn.WithAccountID or CLOUDFLARE_ACCOUNT_ID")
	case len(id) > accountIDMaxLen:
		return invalidArg(op, "account ID is %d characters long; Cloudflare account IDs have at most %d (the 32 hex characters in the dashboard URL)", len(id), accountIDMaxLen)
	}
	if i := strings.IndexFunc(id, notAlnum); i >= 0 {
		return invalidArg(op, "account ID %q has %q at position %d; it takes letters and digits only", id, id[i], i+1)
	}
	return nil
}

func checkKeyID(op, id string) error {
	switch {
	case id == "":
		return invalidArg(op, "key ID is empty: pass the key's uid (32 characters), as listed by ListKeys")
	case len(id) != keyIDLen:
		return invalidArg(op, "key ID is %d characters long; TURN key IDs have exactly %d", len(id), keyIDLen)
	}
	if i := strings.IndexFunc(id, notAlnum); i >= 0 {
		return invalidArg(op, "key ID %q has %q at position %d; it takes letters and digits only", id, id[i], i+1)
	}
	return nil
}

func checkKeySecret(op string, s Secret) error {
	if s.IsZero() {
		return invalidArg(op, "key secret is empty: pass the key's secret, returned once by CreateKey")
	}
	if strings.ContainsAny(s.Reveal(), " \t\r\n") {
		return invalidArg(op, "key secret contains white space; check how it was read")
	}
	return nil
}

func checkTTL(op string, ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return invalidArg(op, "TTL %v must be positive, e.g. 24*time.Hour", ttl)
	case ttl%time.Second != 0:
		return invalidArg(op, "TTL %v is not a whole number of seconds", ttl)
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
	}
	return nil
}

func notAlnum(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
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
