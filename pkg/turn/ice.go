package turn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cfturn/cfturn/gen/calls"
	"github.com/cfturn/cfturn/gen/callsclient"
)

// ICEServers is a generated iceServers list. json.Marshal turns it into {"iceServers": [...]},
// exactly the RTCConfiguration a browser passes to new RTCPeerConnection(config), credentials
// included, with any field Cloudflare adds kept: send that to the browser, never to a log. Printing
// it with fmt or slog, or marshalling a single ICEServer, redacts the credentials.
type ICEServers struct {
	Servers []ICEServer
	// Expires is when the credentials run out: the time the request was sent plus the TTL.
	Expires time.Time

	// Extra holds the answer's top-level fields this package does not know, by name, as they came;
	// MarshalJSON writes them back beside "iceServers".
	Extra map[string]json.RawMessage
}

// ICEServer is one entry of an iceServers list: a STUN entry has only URLs, a TURN entry also has
// Username and Credential.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential Secret

	// Extra holds the entry's fields this package does not know, by name, as they came; they are
	// written back when the list is marshalled for a browser.
	Extra map[string]json.RawMessage
}

// GenerateICEServersParams are the arguments of GenerateICEServers.
type GenerateICEServersParams struct {
	KeyID     string        // the TURN key's uid
	KeySecret Secret        // the TURN key's secret, from CreateKey: 64 characters
	TTL       time.Duration // lifetime of the credentials: whole seconds, at most MaxICETTL (48h)

	// CustomIdentifier optionally tags the credential for Cloudflare's per-user usage analytics and
	// abuse monitoring, e.g. "user4523958". At most MaxCustomIdentifierLen printable characters;
	// sent only when not empty. It is not a secret: it shows up in analytics, so do not put an
	// email address or a session token there.
	CustomIdentifier string
}

// RevokeICECredentialParams are the arguments of RevokeICECredential.
type RevokeICECredentialParams struct {
	KeyID     string // the TURN key's uid
	KeySecret Secret // the TURN key's secret
	Username  string // the Username of the TURN entry to revoke
}

var (
	opGenerateICE = &operation{Operation: callsclient.GenerateIceServersOperation, name: "generate ICE servers"}
	opRevokeICE   = &operation{Operation: callsclient.RevokeIceCredentialOperation, name: "revoke ICE credential"}
)

// GenerateICEServers mints short-lived ICE credentials from a TURN key. It is authorised by the key's
// secret, not the API token. A failed call may be retried: an extra credential is harmless.
//
// API: POST https://rtc.live.cloudflare.com/v1/turn/keys/{key_id}/credentials/generate-ice-servers
// (https://developers.cloudflare.com/realtime/turn/generate-credentials/)
func (c *Client) GenerateICEServers(ctx context.Context, p GenerateICEServersParams) (ICEServers, error) {
	op := opGenerateICE
	if err := p.validate(op.name); err != nil {
		return ICEServers{}, err
	}
	body := calls.IceServersRequest{Ttl: int64(p.TTL / time.Second)}
	if p.CustomIdentifier != "" {
		body.CustomIdentifier = &p.CustomIdentifier
	}
	req, err := callsclient.NewGenerateIceServersRequest(c.cfg.iceBase, p.KeyID, body)
	if err != nil {
		return ICEServers{}, buildError(op, err)
	}
	sent := time.Now()
	res, err := c.send(ctx, op, req, p.KeySecret)
	if err != nil {
		return ICEServers{}, err
	}
	var out ICEServers
	if err := json.Unmarshal(res.body, &out); err != nil || len(out.Servers) == 0 {
		reason := "no iceServers in the response"
		if err != nil {
			reason = describeBody(res, err)
		}
		e := unexpected(op, res, []Secret{p.KeySecret}, reason)
		if res.status/100 == 2 {
			// A minted answer holds a credential, which no redaction can tell apart from the rest
			// of a broken body: none of it goes into the error.
			e.Excerpt = ""
		}
		return ICEServers{}, e
	}
	out.Expires = sent.Add(p.TTL)
	return out, nil
}

// RevokeICECredential revokes one credential before its TTL runs out, so the TURN servers refuse it.
//
// API: POST https://rtc.live.cloudflare.com/v1/turn/keys/{key_id}/credentials/{username}/revoke
// (https://developers.cloudflare.com/realtime/turn/generate-credentials/)
func (c *Client) RevokeICECredential(ctx context.Context, p RevokeICECredentialParams) error {
	op := opRevokeICE
	if err := checkICE(op, p.KeyID, p.KeySecret); err != nil {
		return err
	}
	if err := checkUsername(op.name, p.Username); err != nil {
		return err
	}
	req, err := callsclient.NewRevokeIceCredentialRequest(c.cfg.iceBase, p.KeyID, p.Username)
	if err != nil {
		return buildError(op, err)
	}
	_, err = c.send(ctx, op, req, p.KeySecret, NewSecret(p.Username))
	return err
}

// Validate reports what GenerateICEServers would refuse before sending anything: a malformed key
// ID or secret, a TTL that is not whole seconds from 1s to MaxICETTL, or a CustomIdentifier that is
// too long or not printable. The error matches ErrInvalidArgument and names the field. A server that
// mints for others (iceserve) calls it to refuse a bad request without spending an upstream call.
func (p GenerateICEServersParams) Validate() error { return p.validate(opGenerateICE.name) }

func (p GenerateICEServersParams) validate(op string) error {
	if err := checkKeyID(op, p.KeyID); err != nil {
		return err
	}
	if err := checkKeySecret(op, p.KeySecret); err != nil {
		return err
	}
	if err := checkTTL(op, p.TTL); err != nil {
		return err
	}
	return checkCustomIdentifier(op, p.CustomIdentifier)
}

func checkICE(op *operation, keyID string, secret Secret) error {
	if err := checkKeyID(op.name, keyID); err != nil {
		return err
	}
	return checkKeySecret(op.name, secret)
}

// MarshalJSON writes {"iceServers": [...]} with the credentials, for the browser. This is the one
// encoding that reveals them; an ICEServer marshalled on its own, as a logger would, is redacted.
func (s ICEServers) MarshalJSON() ([]byte, error) {
	servers := make([]json.RawMessage, len(s.Servers))
	for i, srv := range s.Servers {
		b, err := srv.marshal(true)
		if err != nil {
			return nil, err
		}
		servers[i] = b
	}
	return marshalObject(s.Extra, func(put func(string, any)) { put("iceServers", servers) })
}

// UnmarshalJSON reads {"iceServers": [...]}, keeping unknown fields.
func (s *ICEServers) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	raw, ok := fields["iceServers"]
	if !ok {
		return fmt.Errorf("turn: no iceServers field")
	}
	delete(fields, "iceServers")
	*s = ICEServers{Extra: fields}
	return json.Unmarshal(raw, &s.Servers)
}

// MarshalJSON writes the entry as RTCIceServer with the username and credential redacted, so a
// logged entry leaks nothing. Marshal the whole ICEServers to send credentials to a browser.
func (s ICEServer) MarshalJSON() ([]byte, error) { return s.marshal(false) }

func (s ICEServer) marshal(reveal bool) ([]byte, error) {
	return marshalObject(s.Extra, func(put func(string, any)) {
		put("urls", s.URLs)
		if s.Username != "" {
			put("username", revealIf(reveal, s.Username))
		}
		if !s.Credential.IsZero() {
			put("credential", revealIf(reveal, s.Credential.Reveal()))
		}
	})
}

func revealIf(reveal bool, v string) string {
	if reveal {
		return v
	}
	return redacted
}

// UnmarshalJSON reads an RTCIceServer; urls may be a string or a list. Unknown fields are kept.
func (s *ICEServer) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	var out ICEServer
	if raw, ok := fields["urls"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			out.URLs = []string{one}
		} else if err := json.Unmarshal(raw, &out.URLs); err != nil {
			return fmt.Errorf("turn: ICE server urls must be a string or a list of strings")
		}
	}
	if len(out.URLs) == 0 {
		return fmt.Errorf("turn: ICE server has no urls")
	}
	if raw, ok := fields["username"]; ok {
		if err := json.Unmarshal(raw, &out.Username); err != nil {
			return fmt.Errorf("turn: ICE server username must be a string")
		}
	}
	if raw, ok := fields["credential"]; ok {
		if err := json.Unmarshal(raw, &out.Credential); err != nil {
			return fmt.Errorf("turn: ICE server credential must be a string")
		}
	}
	delete(fields, "urls")
	delete(fields, "username")
	delete(fields, "credential")
	if len(fields) > 0 {
		out.Extra = fields
	}
	*s = out
	return nil
}

// String shows the URLs and hides the credentials.
func (s ICEServer) String() string {
	if s.Username == "" && s.Credential.IsZero() {
		return fmt.Sprintf("{urls:%v}", s.URLs)
	}
	return fmt.Sprintf("{urls:%v username:%s credential:%s}", s.URLs, redacted, redacted)
}

// Format implements fmt.Formatter: every verb prints String, so credentials never show.
func (s ICEServer) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s ICEServer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String shows the URLs and hides the credentials.
func (s ICEServers) String() string {
	return fmt.Sprintf("{iceServers:%v expires:%s}", s.Servers, s.Expires.Format(time.RFC3339))
}

// Format implements fmt.Formatter: every verb prints String, so credentials never show.
func (s ICEServers) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s ICEServers) LogValue() slog.Value { return slog.StringValue(s.String()) }

// marshalObject writes a JSON object of known fields followed by the kept unknown ones.
func marshalObject(extra map[string]json.RawMessage, known func(put func(string, any))) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	buf.WriteByte('{')
	put := func(k string, v any) {
		if err != nil {
			return
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		var b []byte
		if b, err = json.Marshal(v); err == nil {
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			buf.Write(b)
		}
	}
	known(put)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		put(k, extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), err
}
