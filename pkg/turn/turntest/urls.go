package turntest

import "github.com/cfturn/cfturn/gen/calls"

// The fake's ICE answers unless a relay is attached (SetICEURLs): the URL sets Cloudflare's
// Realtime TURN docs list.
// Credentials are filled into the TURN entry.
var (
	// cloudflareICEServers is the set Cloudflare documents today.
	cloudflareICEServers = []calls.IceServer{
		{Urls: []string{"stun:stun.cloudflare.com:3478"}},
		{Urls: []string{
			"turn:turn.cloudflare.com:3478?transport=udp",
			"turn:turn.cloudflare.com:443?transport=udp",
			"turn:turn.cloudflare.com:3478?transport=tcp",
			"turn:turn.cloudflare.com:80?transport=tcp",
			"turns:turn.cloudflare.com:5349?transport=tcp",
			"turns:turn.cloudflare.com:443?transport=tcp",
		}},
	}
	// cloudflareLegacyICEServers is the older set, with port-53 URLs, that some answers still carry.
	cloudflareLegacyICEServers = []calls.IceServer{
		{Urls: []string{"stun:stun.cloudflare.com:3478", "stun:stun.cloudflare.com:53"}},
		{Urls: []string{
			"turn:turn.cloudflare.com:3478?transport=udp",
			"turn:turn.cloudflare.com:53?transport=udp",
			"turn:turn.cloudflare.com:3478?transport=tcp",
			"turn:turn.cloudflare.com:80?transport=tcp",
			"turns:turn.cloudflare.com:5349?transport=tcp",
			"turns:turn.cloudflare.com:443?transport=tcp",
		}},
	}
)

// WithLegacyICEURLs makes the fake answer, unless a relay is attached, the older URL set of Cloudflare's
// docs, with stun:…:53 and turn:…:53?transport=udp, to test code that must cope with both sets.
func WithLegacyICEURLs() Option { return func(s *settings) { s.legacyURLs = true } }
