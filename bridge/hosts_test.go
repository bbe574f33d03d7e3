package bridge

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"chatbridge/tcpserver"
)

func TestParseEmbedOrigins(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"*", []string{"*"}, ""},
		{"'self'", []string{"'self'"}, ""},
		{"'NONE'", []string{"'none'"}, ""},
		{"https://docs.example.com", []string{"https://docs.example.com"}, ""},
		{"https://docs.example.com:8443, http://127.0.0.1:8000 'self'", []string{"https://docs.example.com:8443", "http://127.0.0.1:8000", "'self'"}, ""},
		{"*.example.com,https://*.example.org", []string{"*.example.com", "https://*.example.org"}, ""},
		{"http://[::1]:8080", []string{"http://[::1]:8080"}, ""},
		{"https://xn--bcher-kva.example", []string{"https://xn--bcher-kva.example"}, ""},

		// The attack: a second directive smuggled in after a ";".
		{"https://docs.example.com; report-uri https://evil.example/x *", nil, `"https://docs.example.com;"`},
		{"'unsafe-inline'", nil, `"'unsafe-inline'"`},
		{"javascript:alert(1)", nil, `"javascript:alert(1)"`},
		{"javascript://docs.example.com", nil, `"javascript://docs.example.com"`},
		{"data:", nil, `"data:"`},
		{"https:", nil, `"https:"`},
		{"docs.example.com", nil, "want scheme://host[:port]"},
		{"https://docs.example.com/", nil, `"https://docs.example.com/"`},
		{"https://docs.example.com/path", nil, "want scheme://host"},
		{"https://user@docs.example.com", nil, "want scheme://host"},
		{"https://docs.example.com?x", nil, "want scheme://host"},
		{"https://docs.example.com:0", nil, "port"},
		{"https://docs.example.com:70000", nil, "port"},
		{"https://docs.example.com:*", nil, "port"},
		{"*.", nil, "want scheme"},
		{"https://docs.exa\u200bmple.com", nil, "want scheme"},
		{"*..example.com", nil, "want scheme"},
		{"https://a..example.com", nil, "want scheme"},
		{"https://-a.example.com", nil, "want scheme"},
		{"https://*", nil, "want scheme"},
		{"https://*.1.2.3.4", nil, "want scheme"},
		{"https://[fe80::1%eth0]", nil, "want scheme"},
		{"https://" + strings.Repeat("a", 64) + ".example", nil, "want scheme"},
		{"* https://docs.example.com", nil, "* stands alone"},
		{"'none' 'self'", nil, "'none' stands alone"},
		{"", nil, "empty"},
		{" , ", nil, "empty"},
		{strings.Repeat("https://a.example ", 65), nil, "at most 64"},
	}
	for _, tt := range tests {
		got, err := ParseEmbedOrigins(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseEmbedOrigins(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseEmbedOrigins(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// A Config made in code with a bad entry frames nothing: the old code
// dropped what it did not like and kept the rest, "*" included.
func TestEmbedOriginsRefusedFrameNothing(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{EmbedOrigins: []string{"https://docs.example.com;", "report-uri", "https://evil.example/x", "*"}})
	resp, err := http.Get(st.httpURL + "/embed")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors 'none'") || strings.Contains(csp, "report-uri") {
		t.Fatalf("/embed CSP = %q", csp)
	}
}

func TestParseAllowHosts(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"chat.example.com", []string{"chat.example.com"}, ""},
		{"Chat.Example.COM., *.example.org 10.0.0.5 [::1] localhost", []string{"chat.example.com", "*.example.org", "10.0.0.5", "::1", "localhost"}, ""},
		{"chat.example.com:8080", nil, `"chat.example.com:8080": want a host name`},
		{"http://chat.example.com", nil, "want a host name"},
		{"*", nil, "want a host name"},
		{"*.", nil, "want a host name"},
		{"a..example.com", nil, "want a host name"},
		{"chat.example.com/", nil, "want a host name"},
		{"fe80::1%eth0", nil, "want a host name"},
		{"1.2.3.999", nil, "want a host name"},
		{strings.Repeat("a.example ", 65), nil, "at most 64"},
	}
	for _, tt := range tests {
		got, err := ParseAllowHosts(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseAllowHosts(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseAllowHosts(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	allow, err := ParseAllowHosts("chat.example.com, *.example.org, 127.0.0.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"chat.example.com", true},
		{"CHAT.example.com:8080", true},
		{"chat.example.com.", true},
		{"a.example.org", true},
		{"a.b.example.org:443", true},
		{"127.0.0.1:8080", true},
		{"[::1]:8080", true},
		{"[::1]", true},
		{"example.org", false}, // *.example.org is below it, not it
		{"evil.example", false},
		{"chat.example.com.evil.example", false},
		{"evilexample.org", false},
		{"127.0.0.2:8080", false},
		{"", false},
		{":8080", false},
		{"chat.example.com@evil.example", false},
	}
	for _, tt := range tests {
		if got := hostAllowed(allow, tt.host); got != tt.want {
			t.Errorf("hostAllowed(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

// With AllowHosts, a request for another host name (what a DNS-rebound
// page sends) gets 421 on every path but /healthz, the WebSocket
// included, before anything else is looked at.
func TestAllowHostsRefusesOtherHosts(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{AllowHosts: []string{"chat.example.com", "127.0.0.1"}})
	get := func(method, path, host string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, st.httpURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, path := range []string{"/", "/embed", "/app.js", "/metrics", "/ws", "/nope"} {
		code, h, body := get("GET", path, "evil.example:8080")
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "does not answer for that host") {
			t.Errorf("GET %s for evil.example = %d %q", path, code, body)
		}
		if h.Get("Content-Security-Policy") != cspNone || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s for evil.example: headers %v", path, h)
		}
	}
	if code, _, _ := get("POST", "/ws", "evil.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("POST /ws for evil.example = %d, want 421 before 405", code)
	}
	if code, _, body := get("GET", "/healthz", "10.1.2.3:8080"); code != 200 || body != "." {
		t.Errorf("/healthz by IP = %d %q", code, body)
	}
	for _, host := range []string{"chat.example.com", "Chat.Example.Com:8080", strings.TrimPrefix(st.httpURL, "http://")} {
		if code, _, body := get("GET", "/", host); code != 200 || !strings.Contains(body, `role="log"`) {
			t.Errorf("GET / for %s = %d", host, code)
		}
	}
	// The chat itself works for an allowed host: the test's own client
	// dials 127.0.0.1.
	c := st.jsonClient(t, "")
	if c.name == "" {
		t.Fatal("no hello for an allowed host")
	}
}

// FuzzHostLists checks that whatever ParseEmbedOrigins accepts is a list
// of sources that cannot break out of frame-ancestors, and that whatever
// ParseAllowHosts accepts is bare host names or addresses.
func FuzzHostLists(f *testing.F) {
	for _, s := range []string{"*", "'self' https://docs.example.com:8443", "*.example.com, http://[::1]:80",
		"https://a.example; report-uri https://evil.example/x *", "chat.example.com,*.example.org 10.0.0.1 [::1]", "'none'", "javascript:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if srcs, err := ParseEmbedOrigins(s); err == nil {
			if len(srcs) == 0 {
				t.Fatalf("%q: accepted as nothing", s)
			}
			for _, src := range srcs {
				if strings.ContainsAny(src, ";,\"\\ \t\r\n\x00") || src == "" {
					t.Fatalf("%q: source %q could break out of the directive", s, src)
				}
				if strings.Contains(src, "'") && src != "'self'" && src != "'none'" {
					t.Fatalf("%q: keyword %q", s, src)
				}
				if strings.Contains(src, ":") && !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "*.") {
					t.Fatalf("%q: scheme of %q", s, src)
				}
				if i := strings.Index(src, "://"); i >= 0 && strings.ContainsAny(src[i+3:], "/?#@") {
					t.Fatalf("%q: %q has more than an origin", s, src)
				}
			}
		}
		if hosts, err := ParseAllowHosts(s); err == nil {
			for _, h := range hosts {
				if h == "" || strings.ContainsAny(h, "/?#@;, \t\r\n[]") || h != strings.ToLower(h) {
					t.Fatalf("%q: host %q", s, h)
				}
			}
		}
	})
}

// A list longer than maxHostEntries is refused, not walked on every
// request.
func TestHostListsBounded(t *testing.T) {
	many := func(n int, entry string) string {
		return strings.TrimSuffix(strings.Repeat(entry+",", n), ",")
	}
	if got, err := ParseEmbedOrigins(many(maxHostEntries, "https://docs.example.com")); err != nil || len(got) != maxHostEntries {
		t.Fatalf("ParseEmbedOrigins of %d entries = %d, %v", maxHostEntries, len(got), err)
	}
	if got, err := ParseAllowHosts(many(maxHostEntries, "chat.example.com")); err != nil || len(got) != maxHostEntries {
		t.Fatalf("ParseAllowHosts of %d entries = %d, %v", maxHostEntries, len(got), err)
	}
	want := fmt.Sprintf("%d entries: at most %d", maxHostEntries+1, maxHostEntries)
	if got, err := ParseEmbedOrigins(many(maxHostEntries+1, "https://docs.example.com")); err == nil || err.Error() != want {
		t.Fatalf("ParseEmbedOrigins of %d entries = %d, %v; want %q", maxHostEntries+1, len(got), err, want)
	}
	if got, err := ParseAllowHosts(many(maxHostEntries+1, "chat.example.com")); err == nil || err.Error() != want {
		t.Fatalf("ParseAllowHosts of %d entries = %d, %v; want %q", maxHostEntries+1, len(got), err, want)
	}
}

// An IPv4-mapped address in --allow-host is the IPv4 address it maps, as
// a request's Host is compared: kept mapped, it matched no request at all.
func TestAllowHostMappedIPv4(t *testing.T) {
	allow, err := ParseAllowHosts("::ffff:10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"10.0.0.5:8080", "[::ffff:10.0.0.5]:8080"} {
		if !hostAllowed(allow, host) {
			t.Errorf("--allow-host ::ffff:10.0.0.5 (%q): refuses %q", allow, host)
		}
	}
}
