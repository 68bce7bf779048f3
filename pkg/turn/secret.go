package turn

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret holds a credential: an API token, a TURN key's secret or an ICE credential.
//
// Every way of printing it — String, GoString, any fmt verb, slog, encoding/json — shows
// "[REDACTED]"; the value is read only through Reveal. The value sits behind a pointer, so even a
// struct that keeps a Secret in an unexported field prints an address, never the credential.
// The zero Secret is empty. Secrets are immutable and safe to copy and share.
type Secret struct {
	p *string
}

// NewSecret wraps s. An empty s gives the empty Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Reveal returns the credential itself. Call it only where the credential must leave the program:
// an Authorization header, a file the user asked for, the body sent to a browser.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the Secret is empty.
func (s Secret) IsZero() bool { return s.p == nil }

// String returns "[REDACTED]", or "" for the empty Secret.
func (s Secret) String() string {
	if s.p == nil {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer for %#v.
func (s Secret) GoString() string { return `turn.Secret("` + s.String() + `")` }

// Format implements fmt.Formatter so that every verb, including %x and %q, is redacted.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes "[REDACTED]", so a Secret logged as JSON leaks nothing. Code that must send the
// credential builds its own payload with Reveal.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a JSON string into the Secret.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("turn: secret must be a JSON string")
	}
	*s = NewSecret(v)
	return nil
}
