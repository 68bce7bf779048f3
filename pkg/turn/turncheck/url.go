package turncheck

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// iceURL is a parsed stun:, turn: or turns: URL (RFC 7064 and RFC 7065).
type iceURL struct {
	raw       string // as given, with anything before an '@' (userinfo) cut out
	scheme    string // stun, turn or turns
	host      string
	port      int
	transport string // udp, tcp or tls: how the client reaches the server
	ipv6      bool   // host is an IPv6 literal, [..] in the URL: dialled and relayed over IPv6
}

func (u iceURL) addr() string { return net.JoinHostPort(u.host, strconv.Itoa(u.port)) }

// redactURL cuts everything before the last '@' of a URL: ICE URLs carry no userinfo, and one
// that does (turn:user:password@host) must not print its password in an error.
func redactURL(raw string) string {
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "[REDACTED]@" + raw[i+1:]
	}
	return raw
}

// parseICEURL parses one URL of an iceServers entry. Its errors quote the URL without userinfo.
// An IPv6 host is a literal in brackets (RFC 3986), without a zone: a zone names an interface of
// the machine that wrote the URL, which means nothing to the browser that reads it.
func parseICEURL(raw string) (iceURL, error) {
	safe := redactURL(raw)
	if safe != raw {
		return iceURL{}, fmt.Errorf("%q: an ICE URL takes no user or password before '@'; they go in username and credential", safe)
	}
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
	host, port, hasPort := hostport, "", false
	if strings.HasPrefix(hostport, "[") {
		end := strings.Index(hostport, "]")
		if end < 0 {
			return iceURL{}, fmt.Errorf("%q: unclosed [ in the host", raw)
		}
		after := hostport[end+1:]
		if after != "" && after[0] != ':' {
			return iceURL{}, fmt.Errorf("%q: junk after the host", raw)
		}
		host, port, hasPort = hostport[1:end], strings.TrimPrefix(after, ":"), after != ""
		if strings.Contains(host, "%") {
			return iceURL{}, fmt.Errorf("%q: [%s] has a zone; write the address without %%zone", raw, host)
		}
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return iceURL{}, fmt.Errorf("%q: [%s] is not an IPv6 address", raw, host)
		} else if ip.To4() != nil {
			return iceURL{}, fmt.Errorf("%q: [%s] is an IPv4 address written as IPv6; write it as %s without brackets", raw, host, ip.To4())
		}
		u.ipv6 = true
	} else {
		if strings.Count(hostport, ":") > 1 {
			return iceURL{}, fmt.Errorf("%q: an IPv6 address goes in brackets, e.g. turn:[2001:db8::1]:3478", raw)
		}
		host, port, hasPort = strings.Cut(hostport, ":")
	}
	if host == "" {
		return iceURL{}, fmt.Errorf("%q: no host", raw)
	}
	if !u.ipv6 && net.ParseIP(host) == nil && !validHostname(host) {
		return iceURL{}, fmt.Errorf("%q: the host must be an IPv4 address, an IPv6 address in brackets or a DNS name of letters, digits, '-' and '.'", raw)
	}
	u.host = host
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return iceURL{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", raw, port)
		}
		u.port = n
	}
	return u, nil
}

// validHostname reports whether h is a DNS name: dot-separated labels of 1 to 63 letters,
// digits, '-' or '_', 253 bytes at most. Anything else (%xx escapes, NUL, spaces) never goes
// to the resolver.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
