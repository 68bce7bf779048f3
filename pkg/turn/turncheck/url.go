package turncheck

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// iceURL is a parsed stun:, turn: or turns: URL (RFC 7064 and RFC 7065).
type iceURL struct {
	raw       string
	scheme    string // stun, turn or turns
	host      string
	port      int
	transport string // udp, tcp or tls: how the client reaches the server
}

func (u iceURL) addr() string { return net.JoinHostPort(u.host, strconv.Itoa(u.port)) }

// parseICEURL parses one URL of an iceServers entry.
func parseICEURL(raw string) (iceURL, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return iceURL{}, fmt.Errorf("%q is not a stun:, turn: or turns: URL", raw)
	}
	u := iceURL{raw: raw, scheme: strings.ToLower(scheme)}
	hostport, query, _ := strings.Cut(rest, "?")
	switch u.scheme {
	case "stun":
		u.port, u.transport = 3478, "udp"
	case "turn":
		u.port, u.transport = 3478, "udp"
	case "turns":
		u.port, u.transport = 5349, "tls"
	default:
		return iceURL{}, fmt.Errorf("%q: scheme %q is not stun, turn or turns", raw, scheme)
	}
	if query != "" {
		if u.scheme == "stun" {
			return iceURL{}, fmt.Errorf("%q: a stun: URL takes no ?query", raw)
		}
		name, value, _ := strings.Cut(query, "=")
		if name != "transport" || (value != "udp" && value != "tcp") {
			return iceURL{}, fmt.Errorf("%q: the query must be ?transport=udp or ?transport=tcp", raw)
		}
		switch {
		case u.scheme == "turns" && value == "udp":
			return iceURL{}, fmt.Errorf("%q: turns: over udp (DTLS) is not supported", raw)
		case u.scheme == "turn":
			u.transport = value
		}
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.Index(hostport, "]")
		if end < 0 {
			return iceURL{}, fmt.Errorf("%q: unclosed [ in the host", raw)
		}
		host, port = hostport[1:end], strings.TrimPrefix(hostport[end+1:], ":")
		if port == "" && len(hostport) > end+1 && hostport[end+1] != ':' {
			return iceURL{}, fmt.Errorf("%q: junk after the host", raw)
		}
	} else if h, p, ok := strings.Cut(hostport, ":"); ok {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return iceURL{}, fmt.Errorf("%q: no host, or a host with /, @ or a space", raw)
	}
	u.host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return iceURL{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", raw, port)
		}
		u.port = n
	}
	return u, nil
}
