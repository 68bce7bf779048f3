package turntest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cfturn/cfturn/gen/calls"
	"github.com/cfturn/cfturn/pkg/turn"
)

// What a TURN server attached to the fake (package turnrelay) uses of it: LookupCredential to
// authenticate a credential the fake minted and to stop it once it dies, ReportRelayed to count
// what it carried, SetICEURLs to make generate-ice-servers answer its URLs. The relay gets copies
// through these methods, never the fake's table or its lock.

// CredentialState says whether an ICE credential may be used now and, if not, why.
type CredentialState int

const (
	// CredentialLive is a credential minted by the fake, not revoked, not expired, whose key exists.
	CredentialLive CredentialState = iota
	// CredentialUnknown is a credential the fake does not hold: never minted, evicted by newer
	// ones (the fake keeps the newest 10,000), or dropped after it expired.
	CredentialUnknown
	// CredentialRevoked is a credential revoked through revoke-ice-credential.
	CredentialRevoked
	// CredentialExpired is a credential whose TTL has run out by the fake's clock (WithClock).
	CredentialExpired
	// CredentialKeyDeleted is a credential whose TURN key was deleted.
	CredentialKeyDeleted
)

// String returns the state as a relay logs a refusal: "live", "credential revoked", ...
func (s CredentialState) String() string {
	switch s {
	case CredentialLive:
		return "live"
	case CredentialUnknown:
		return "unknown or evicted credential"
	case CredentialRevoked:
		return "credential revoked"
	case CredentialExpired:
		return "credential expired"
	case CredentialKeyDeleted:
		return "the credential's key was deleted"
	}
	return fmt.Sprintf("CredentialState(%d)", int(s))
}

// Credential is an ICE credential as the fake holds it: what a TURN server needs to authenticate
// it. It holds no reference into the fake.
type Credential struct {
	Username string
	// Password is the credential field of the ICE answer: TURN's long-term password for Username.
	Password         turn.Secret
	KeyID            string // the TURN key it was minted with
	CustomIdentifier string // as given to generate-ice-servers; "" when none was
	Expires          time.Time
	State            CredentialState
}

// Live reports whether the credential may be used now (State is CredentialLive).
func (c Credential) Live() bool { return c.State == CredentialLive }

// LookupCredential returns the ICE credential named username and its state by the fake's clock.
// For a credential the fake does not hold, only Username and State (CredentialUnknown) are set.
func (f *Fake) LookupCredential(username string) Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creds.get(username)
	if c == nil {
		return Credential{Username: username, State: CredentialUnknown}
	}
	out := Credential{
		Username: c.username, Password: turn.NewSecret(c.secret), KeyID: c.keyID,
		CustomIdentifier: c.customIdentifier, Expires: c.expires,
	}
	switch {
	case c.revoked:
		out.State = CredentialRevoked
	case !c.expires.After(f.now()):
		out.State = CredentialExpired
	case f.byID[c.keyID] == nil:
		out.State = CredentialKeyDeleted
	}
	return out
}

// RelayedTraffic is a count of bytes a TURN server relayed for one ICE credential, by direction
// as Cloudflare's usage analytics name them: Egress was sent to the credential's client (what its
// peers sent), Ingress was received from the client (for its peers).
type RelayedTraffic struct {
	Username string
	Egress   int64
	Ingress  int64
}

// Total is Egress plus Ingress.
func (t RelayedTraffic) Total() int64 { return t.Egress + t.Ingress }

// traffic is what the fake has counted for a credential or a customIdentifier.
type traffic struct{ egress, ingress int64 }

func (t *traffic) add(r RelayedTraffic) {
	t.egress += max(r.Egress, 0)
	t.ingress += max(r.Ingress, 0)
}

// ReportRelayed adds a TURN server's count to the credential named t.Username and to its
// customIdentifier. The fake drops a report for a credential it no longer holds, and negative
// counts.
func (f *Fake) ReportRelayed(t RelayedTraffic) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creds.get(t.Username)
	if c == nil {
		return
	}
	c.relayed.add(t)
	f.countRelayedLocked(c, t) // for the analytics (analytics.go)
	if c.customIdentifier != "" {
		if n := f.creds.identifier(c.customIdentifier); n != nil {
			n.add(t)
		}
	}
}

// Relayed returns the bytes relayed for the credential username, by direction, as reported with
// ReportRelayed (zero once the credential has been evicted from the fake's table).
func (f *Fake) Relayed(username string) RelayedTraffic {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := RelayedTraffic{Username: username}
	if c := f.creds.get(username); c != nil {
		out.Egress, out.Ingress = c.relayed.egress, c.relayed.ingress
	}
	return out
}

// RelayedBytes returns how many bytes were relayed, both ways, for the credential username (0
// once it has been evicted from the fake's table).
func (f *Fake) RelayedBytes(username string) int64 { return f.Relayed(username).Total() }

// RelayedBytesByIdentifier returns how many bytes were relayed, both ways, for every credential
// minted with this customIdentifier, evicted ones included. The fake counts for at most as many
// identifiers as it keeps credentials (10,000); later ones are not counted.
func (f *Fake) RelayedBytesByIdentifier(customIdentifier string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.creds.identifiers[customIdentifier]; n != nil {
		return n.egress + n.ingress
	}
	return 0
}

// maxICEURLs bounds the URLs SetICEURLs takes.
const maxICEURLs = 32

// SetICEURLs makes generate-ice-servers answer these URLs from now on, in the shape Cloudflare
// answers: one entry with the stun: URLs, then one with the turn: and turns: URLs carrying the
// credential. At least one turn: or turns: URL is needed; with no URLs at all, the answers go back
// to Cloudflare's URL set (see WithLegacyICEURLs). A TURN server attached to the fake calls it
// with its own URLs.
func (f *Fake) SetICEURLs(urls ...string) error {
	servers := f.defaultICE
	if len(urls) > 0 {
		if len(urls) > maxICEURLs {
			return fmt.Errorf("turntest: %d ICE URLs, more than %d", len(urls), maxICEURLs)
		}
		var stun, relay []string
		for _, u := range urls {
			scheme, rest, _ := strings.Cut(u, ":")
			switch {
			case rest == "" || strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }):
				return fmt.Errorf("turntest: ICE URL %q: want scheme:host:port with no spaces, e.g. turn:127.0.0.1:3478?transport=udp", u)
			case scheme == "stun":
				stun = append(stun, u)
			case scheme == "turn" || scheme == "turns":
				relay = append(relay, u)
			default:
				return fmt.Errorf("turntest: ICE URL %q: the scheme must be stun, turn or turns", u)
			}
		}
		if len(relay) == 0 {
			return fmt.Errorf("turntest: ICE URLs %q: no turn: or turns: URL to carry the credential", urls)
		}
		servers = nil
		if len(stun) > 0 {
			servers = append(servers, calls.IceServer{Urls: stun})
		}
		servers = append(servers, calls.IceServer{Urls: slices.Clip(relay)})
	}
	f.mu.Lock()
	f.iceURLs = servers
	f.mu.Unlock()
	return nil
}
