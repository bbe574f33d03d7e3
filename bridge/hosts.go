package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// maxHostEntries bounds --embed-origins and --allow-host: a list longer
// than this is a mistake, and each request would walk it.
const maxHostEntries = 64

// fields splits a flag's list on commas and white space.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n' })
}

// quoteEntry shows an entry in an error, cut if it is long.
func quoteEntry(s string) string {
	if len(s) > 50 {
		s = s[:50] + "..."
	}
	return strconv.Quote(s)
}

// ParseEmbedOrigins checks a list of the sites that may frame /embed
// (Config.EmbedOrigins), separated by commas or spaces. Each entry must
// be one of: scheme://host[:port] (http or https; the host may start with
// "*." and be an IP address), *.host[:port], 'self', 'none', or *; 'none'
// and * stand alone. Anything else is refused rather than dropped:
// entries go into the CSP's frame-ancestors directive, and one that is
// dropped or that smuggles in another directive ("https://a.example;
// report-uri ...") would silently frame the chat elsewhere, or nowhere.
func ParseEmbedOrigins(s string) ([]string, error) {
	list := fields(s)
	if len(list) == 0 {
		return nil, errors.New("empty: want * (any site), 'none', or origins such as https://docs.example.com")
	}
	if len(list) > maxHostEntries {
		return nil, fmt.Errorf("%d entries: at most %d", len(list), maxHostEntries)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		src, err := embedSource(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", quoteEntry(e), err)
		}
		if (src == "*" || src == "'none'") && len(list) > 1 {
			return nil, fmt.Errorf("%s stands alone, not with other entries", src)
		}
		out = append(out, src)
	}
	return out, nil
}

var errEmbedSource = errors.New("want scheme://host[:port] (http or https) such as https://docs.example.com, *.example.com, 'self', 'none' or *")

// embedSource checks one entry of ParseEmbedOrigins and returns it as the
// CSP source it is (keywords in lower case).
func embedSource(e string) (string, error) {
	switch strings.ToLower(e) {
	case "*", "'self'", "'none'":
		return strings.ToLower(e), nil
	}
	rest := e
	if scheme, after, ok := strings.Cut(e, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return "", errEmbedSource
		}
		rest = after
	} else if !strings.HasPrefix(e, "*.") {
		// A bare host would be a valid CSP source, but it is also what a
		// typo looks like; the scheme says which page is meant.
		return "", errEmbedSource
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || port[0] == '0' {
			return "", fmt.Errorf("port %s: want a number from 1 to 65535", quoteEntry(port))
		}
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		if a, err := netip.ParseAddr(host[1 : len(host)-1]); err != nil || !a.Is6() || a.Zone() != "" {
			return "", errEmbedSource
		}
		return e, nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return e, nil
	}
	if !validDNSName(strings.TrimPrefix(host, "*.")) {
		return "", errEmbedSource
	}
	return e, nil
}

// validDNSName reports whether s is a host name: dot-separated labels of
// letters, digits and hyphens, none empty, none starting or ending with a
// hyphen, at most 63 bytes each and 253 in all, not all digits at the end
// (an IP address that did not parse).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// ParseAllowHosts checks a list of the host names the server answers to
// (Config.AllowHosts), separated by commas or spaces: names such as
// chat.example.com, *.example.com (any name below it, not itself), or IP
// addresses, without a port. It returns them in lower case.
func ParseAllowHosts(s string) ([]string, error) {
	list := fields(s)
	if len(list) > maxHostEntries {
		return nil, fmt.Errorf("%d entries: at most %d", len(list), maxHostEntries)
	}
	var out []string
	for _, e := range list {
		h := strings.ToLower(strings.TrimSuffix(e, "."))
		if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil && a.Zone() == "" {
			out = append(out, a.Unmap().String()) // as hostAllowed compares a request's
			continue
		}
		if !validDNSName(strings.TrimPrefix(h, "*.")) {
			return nil, fmt.Errorf("%s: want a host name such as chat.example.com, *.example.com or an IP address, without a port", quoteEntry(e))
		}
		out = append(out, h)
	}
	return out, nil
}

// hostAllowed reports whether a request's Host header names one of the
// hosts in allow (see ParseAllowHosts); its port does not matter.
func hostAllowed(allow []string, hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		host = a.Unmap().String()
	}
	if host == "" {
		return false
	}
	for _, h := range allow {
		if wild, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+wild) {
				return true
			}
		} else if h == host {
			return true
		}
	}
	return false
}

// checkHost answers 421 Misdirected Request to a request for a host not
// in allow. A page that an attacker's DNS points at this server (DNS
// rebinding: evil.example resolving, after the attacker's page loaded, to
// an intranet chatbridge) names its own host, and so gets nothing: not
// the page, not /metrics, and not /ws, whose origin check sees the
// attacker's origin and host agree. /healthz is exempt: a load balancer
// checks it by IP address, and its "." tells nobody anything.
func checkHost(allow []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !hostAllowed(allow, r.Host) {
			http.Error(w, "This server does not answer for that host name.", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
