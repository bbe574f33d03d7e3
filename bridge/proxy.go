package bridge

import (
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy every visitor arrives from the proxy's address,
// so --max-per-ip would cap the whole site and every join would show the
// proxy. A proxy the operator trusts (Config.TrustedProxies) says who its
// client was in X-Forwarded-For, or in Forwarded (RFC 7239); from any
// other peer those headers are the client's own word and are ignored.
//
// Each proxy appends the address it was reached from, so the headers are
// read from the right: the rightmost address that is not itself a trusted
// proxy is the client. Whatever a client wrote to the left of that is
// never looked at, so a client cannot claim someone else's address.

const (
	// maxHops is the most header entries read, from the right. A chain
	// of trusted proxies is a few long; past this the headers are
	// someone's garbage, and the last good hop stands.
	maxHops = 32
	// maxNodeLen is the longest entry taken for an address: a bracketed
	// IPv6 address with a port is 47 bytes.
	maxNodeLen = 64
	// maxProxies is the most entries --trusted-proxies may list.
	maxProxies = 1024
)

// ParseTrustedProxies reads a list of IP addresses and CIDR prefixes, IPv4
// or IPv6, separated by commas or spaces, such as "127.0.0.1, 10.0.0.0/8,
// ::1". An empty list trusts no proxy.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	list := fields(s)
	if len(list) > maxProxies {
		return nil, fmt.Errorf("%d entries: at most %d", len(list), maxProxies)
	}
	var out []netip.Prefix
	for _, f := range list {
		p, err := parseProxy(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", quoteEntry(f), err)
		}
		out = append(out, p)
	}
	return out, nil
}

var errNotProxy = errors.New("not an IP address or CIDR prefix")

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errNotProxy
		}
		if p.Addr().Is4In6() {
			// Peers are compared unmapped: this could never match.
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix: write it as IPv4")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errNotProxy
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trusts reports whether a is one of the trusted proxies.
func trusts(proxies []netip.Prefix, a netip.Addr) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of the client behind r, as limits,
// notices and logs know it: r.RemoteAddr ("ip:port"), or, when the peer
// is a trusted proxy that named its client, that client's IP alone (the
// port of r is the proxy's, not the client's). Headers that cannot be
// used leave the last good hop, and are logged at debug.
func (s *Server) clientAddr(r *http.Request) string {
	proxies := s.cfg.TrustedProxies
	if len(proxies) == 0 {
		return r.RemoteAddr
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not from a TCP peer; nothing to trust
	}
	peer := ap.Addr().Unmap().WithZone("") // a prefix never contains a zoned address
	if !trusts(proxies, peer) {
		return r.RemoteAddr
	}
	client, problem := forwardedClient(r.Header, peer, proxies)
	if problem != "" {
		s.log.Debug("forwarded address unusable", "peer", r.RemoteAddr, "problem", problem, "using", client)
	}
	if client == peer {
		return r.RemoteAddr
	}
	return client.String()
}

// forwardedClient walks the forwarding headers a trusted proxy at peer
// sent, from the right, and returns the first address that is not a
// trusted proxy, or, if they all are, the leftmost. X-Forwarded-For is
// read if there is one, Forwarded if not. Where an entry cannot be used
// (garbage, "unknown", an obfuscated name, too many hops) it stops and
// returns the last good hop, with a problem to log.
func forwardedClient(h http.Header, peer netip.Addr, proxies []netip.Prefix) (netip.Addr, string) {
	if xff := h.Values("X-Forwarded-For"); hasEntry(xff) {
		return walkHops(peer, proxies, "X-Forwarded-For", func(yield func(string) bool) {
			// Several header lines are one list, in order (RFC 9110 5.3).
			for i := len(xff) - 1; i >= 0; i-- {
				for rest := xff[i]; ; {
					j := strings.LastIndexByte(rest, ',')
					entry := strings.TrimSpace(rest[j+1:])
					if entry != "" && !yield(entry) {
						return
					}
					if j < 0 {
						break
					}
					rest = rest[:j]
				}
			}
		})
	}
	if fwd := h.Values("Forwarded"); len(fwd) > 0 {
		elems := lastElements(fwd)
		return walkHops(peer, proxies, "Forwarded", func(yield func(string) bool) {
			for i := len(elems) - 1; i >= 0; i-- {
				node, ok := forwardedFor(elems[i])
				if !ok || node == "" {
					node = "\x00" + elems[i] // malformed, or no for=: parseNode refuses it, and the log shows the element
				}
				if !yield(node) {
					return
				}
			}
		})
	}
	return peer, ""
}

// walkHops takes the entries of header, rightmost first, as
// forwardedClient describes.
func walkHops(peer netip.Addr, proxies []netip.Prefix, header string, hops iter.Seq[string]) (netip.Addr, string) {
	last, n := peer, 0
	for entry := range hops {
		if n++; n > maxHops {
			return last, fmt.Sprintf("%s has more than %d hops", header, maxHops)
		}
		a, ok := parseNode(entry)
		if !ok {
			return last, fmt.Sprintf("%s entry %.40q names no usable address", header, strings.TrimPrefix(entry, "\x00"))
		}
		if last = a; !trusts(proxies, a) {
			break
		}
	}
	return last, ""
}

// hasEntry reports whether any of the header lines names something.
func hasEntry(lines []string) bool {
	for _, l := range lines {
		if strings.Trim(l, " \t,") != "" {
			return true
		}
	}
	return false
}

// lastElements splits Forwarded header lines into their elements, at the
// commas outside quoted strings, and returns the last maxHops+1 of them
// (one more than walkHops will take, so that it sees there were too
// many). Quotes that never close make the rest one element, which will
// not parse.
func lastElements(lines []string) []string {
	var ring [maxHops + 1]string
	n := 0
	keep := func(elem string) {
		if elem = strings.TrimSpace(elem); elem != "" { // "a,,b" is a list of two
			ring[n%len(ring)] = elem
			n++
		}
	}
	for _, line := range lines {
		start, quoted := 0, false
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case quoted && c == '\\':
				i++ // the escaped byte, whatever it is
			case c == '"':
				quoted = !quoted
			case c == ',' && !quoted:
				keep(line[start:i])
				start = i + 1
			}
		}
		keep(line[start:])
	}
	out := make([]string, 0, len(ring))
	for i := max(0, n-len(ring)); i < n; i++ {
		out = append(out, ring[i%len(ring)])
	}
	return out
}

// forwardedFor returns the value of the for parameter of one Forwarded
// element (RFC 7239 section 4), unquoted, or "" if it has none; ok is
// false if the element is not well formed.
func forwardedFor(elem string) (value string, ok bool) {
	seen := false
	for p := elem; ; {
		p = strings.TrimLeft(p, " \t")
		if p == "" {
			return value, true
		}
		if p[0] == ';' { // an empty pair
			p = p[1:]
			continue
		}
		eq := strings.IndexByte(p, '=')
		if eq <= 0 || !isToken(p[:eq]) {
			return "", false
		}
		name := p[:eq]
		p = p[eq+1:]
		var v string
		if strings.HasPrefix(p, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(p) && p[i] != '"'; i++ {
				if p[i] == '\\' && i+1 < len(p) {
					i++
				}
				if b.Len() < maxNodeLen+1 { // enough to see it is too long
					b.WriteByte(p[i])
				}
			}
			if i == len(p) {
				return "", false // the quote never closes
			}
			v, p = b.String(), p[i+1:]
		} else {
			end := 0
			for end < len(p) && isTokenChar(p[end]) {
				end++
			}
			if end == 0 {
				return "", false
			}
			v, p = p[:end], p[end:]
		}
		if strings.EqualFold(name, "for") {
			if seen {
				return "", false // two of them: which one?
			}
			value, seen = v, true
		}
		p = strings.TrimLeft(p, " \t")
		if p != "" && p[0] != ';' {
			return "", false
		}
	}
}

// parseNode reads a client address as proxies write it: an IP address,
// with or without a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), or an
// IPv6 address in brackets. "unknown", an obfuscated identifier ("_x") or
// anything else is not usable. The address comes back unmapped and
// without a zone, as limits compare addresses.
func parseNode(s string) (netip.Addr, bool) {
	if len(s) > maxNodeLen || s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		host, port := "", ""
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return netip.Addr{}, false
			}
			host, port = s[1:end], s[end+1:]
			if port != "" && (port[0] != ':' || !validPort(port[1:])) {
				return netip.Addr{}, false
			}
			if a, err = netip.ParseAddr(host); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		} else {
			i := strings.LastIndexByte(s, ':')
			if i < 0 || !validPort(s[i+1:]) {
				return netip.Addr{}, false
			}
			host = s[:i]
			if a, err = netip.ParseAddr(host); err != nil || !a.Is4() {
				return netip.Addr{}, false
			}
		}
	}
	a = a.Unmap().WithZone("")
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false // no client has it
	}
	return a, true
}

// validPort reports whether s is a port number or an obfuscated one
// (RFC 7239 section 6.3: "_" and letters, digits, ".", "_" or "-").
func validPort(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '_' {
		for i := 1; i < len(s); i++ {
			if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
		return true
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' || i >= 5 {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// isTokenChar reports whether c may be in an HTTP token (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}
