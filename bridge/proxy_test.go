package bridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// testProxies is what the tests trust: a private network, one IPv6
// prefix and loopback's first address.
var testProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
	netip.MustParsePrefix("127.0.0.1/32"),
}

func TestForwardedClient(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name    string
		xff     []string // X-Forwarded-For lines
		fwd     []string // Forwarded lines
		want    string
		problem bool // logged as unusable
	}{
		{"no header", nil, nil, "10.0.0.1", false},
		{"the proxy's client", []string{"203.0.113.7"}, nil, "203.0.113.7", false},
		{"spoofed entry before the proxy's", []string{"6.6.6.6, 203.0.113.7"}, nil, "203.0.113.7", false},
		{"spoofed trusted address before the proxy's", []string{"10.9.9.9, 203.0.113.7"}, nil, "203.0.113.7", false},
		{"a chain of trusted proxies", []string{"203.0.113.7, 10.0.0.2, 10.0.0.3"}, nil, "203.0.113.7", false},
		{"spoofed entry before a chain", []string{"1.1.1.1, 203.0.113.7, 10.0.0.2"}, nil, "203.0.113.7", false},
		{"every hop trusted: the leftmost", []string{"10.0.0.9, 10.0.0.2"}, nil, "10.0.0.9", false},
		{"spoofed line before the proxy's", []string{"6.6.6.6", "203.0.113.7"}, nil, "203.0.113.7", false},
		{"lines are one list", []string{"6.6.6.6", "1.1.1.1, 203.0.113.7, 10.0.0.2"}, nil, "203.0.113.7", false},
		{"IPv6", []string{"2001:db8::7"}, nil, "2001:db8::7", false},
		{"IPv6 in brackets with a port", []string{"[2001:db8::7]:4711"}, nil, "2001:db8::7", false},
		{"IPv4 with a port", []string{"203.0.113.7:4711"}, nil, "203.0.113.7", false},
		{"IPv4-mapped IPv6", []string{"::ffff:203.0.113.7"}, nil, "203.0.113.7", false},
		{"a zone is dropped", []string{"fe80::1%eth0"}, nil, "fe80::1", false},
		{"trusted IPv6 proxy in the chain", []string{"203.0.113.7, 2001:db8:ffff::2"}, nil, "203.0.113.7", false},
		{"empty entries", []string{" , 203.0.113.7 ,, "}, nil, "203.0.113.7", false},
		{"garbage where the proxy's entry is", []string{"203.0.113.7, garbage"}, nil, "10.0.0.1", true},
		{"garbage before the client is not read", []string{"garbage, 203.0.113.7"}, nil, "203.0.113.7", false},
		{"garbage after a trusted hop: the hop", []string{"garbage, 10.0.0.2"}, nil, "10.0.0.2", true},
		{"unknown", []string{"unknown"}, nil, "10.0.0.1", true},
		{"a host name", []string{"client.example.com"}, nil, "10.0.0.1", true},
		{"the unspecified address", []string{"0.0.0.0"}, nil, "10.0.0.1", true},
		{"a multicast address", []string{"ff02::1"}, nil, "10.0.0.1", true},
		{"a port too big", []string{"203.0.113.7:65536"}, nil, "10.0.0.1", true},
		{"an IPv6 address with a bare port", []string{"[2001:db8::7]4711"}, nil, "10.0.0.1", true},
		{"a huge value", []string{strings.Repeat("1", 60000)}, nil, "10.0.0.1", true},
		{"thousands of trusted hops", []string{strings.Repeat("10.0.0.2, ", 5000) + "10.0.0.3"}, nil, "10.0.0.2", true},
		{"thousands of hops behind the client", []string{strings.Repeat("6.6.6.6, ", 5000) + "203.0.113.7"}, nil, "203.0.113.7", false},
		{"thousands of commas", []string{"203.0.113.7" + strings.Repeat(",", 60000)}, nil, "203.0.113.7", false},
		{"thousands of lines", append(make([]string, 5000), "203.0.113.7"), nil, "203.0.113.7", false},
		{"X-Forwarded-For wins over Forwarded", []string{"203.0.113.7"}, []string{"for=198.51.100.1"}, "203.0.113.7", false},
		{"an empty X-Forwarded-For does not count", []string{" , "}, []string{"for=198.51.100.1"}, "198.51.100.1", false},

		{"Forwarded", nil, []string{"for=203.0.113.7"}, "203.0.113.7", false},
		{"Forwarded IPv6 quoted, with a port", nil, []string{`for="[2001:db8::7]:4711"`}, "2001:db8::7", false},
		{"Forwarded with other pairs, any case", nil, []string{`proto=https;For="203.0.113.7:80";by=10.0.0.1`}, "203.0.113.7", false},
		{"Forwarded spoofed element", nil, []string{"for=6.6.6.6, for=203.0.113.7"}, "203.0.113.7", false},
		{"Forwarded spoofed line", nil, []string{"for=6.6.6.6", "for=203.0.113.7"}, "203.0.113.7", false},
		{"Forwarded chain", nil, []string{`for=203.0.113.7, for="[2001:db8:ffff::2]"`}, "203.0.113.7", false},
		{"Forwarded quoted comma is not a new element", nil, []string{`for=203.0.113.7;ext="a, for=6.6.6.6"`}, "203.0.113.7", false},
		{"Forwarded quoted-pair", nil, []string{`for="\[2001:db8::7\]"`}, "2001:db8::7", false},
		{"Forwarded obfuscated port", nil, []string{`for="203.0.113.7:_p1"`}, "203.0.113.7", false},
		{"Forwarded unknown", nil, []string{"for=unknown"}, "10.0.0.1", true},
		{"Forwarded obfuscated", nil, []string{"for=_hidden"}, "10.0.0.1", true},
		{"Forwarded obfuscated where the proxy's is", nil, []string{"for=203.0.113.7, for=_hidden"}, "10.0.0.1", true},
		{"Forwarded obfuscated before a trusted hop", nil, []string{"for=_hidden, for=10.0.0.2"}, "10.0.0.2", true},
		{"Forwarded without for", nil, []string{"proto=https"}, "10.0.0.1", true},
		{"Forwarded with two for", nil, []string{"for=203.0.113.7;for=6.6.6.6"}, "10.0.0.1", true},
		{"Forwarded IPv6 unquoted", nil, []string{"for=2001:db8::7"}, "10.0.0.1", true},
		{"Forwarded quote never closes", nil, []string{`for="203.0.113.7`}, "10.0.0.1", true},
		{"Forwarded client's open quote swallows the rest", nil, []string{`for="6.6.6.6, for=203.0.113.7`}, "10.0.0.1", true},
		{"Forwarded garbage", nil, []string{";;;==="}, "10.0.0.1", true},
		{"Forwarded huge quoted value", nil, []string{`for="` + strings.Repeat("1", 60000) + `"`}, "10.0.0.1", true},
		{"Forwarded thousands of elements", nil, []string{strings.Repeat("for=10.0.0.2,", 5000)}, "10.0.0.2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				h.Add("Forwarded", v)
			}
			start := time.Now()
			got, problem := forwardedClient(h, peer, testProxies)
			if got.String() != tt.want || (problem != "") != tt.problem {
				t.Fatalf("got %v, problem %q; want %s, a problem: %v", got, problem, tt.want, tt.problem)
			}
			if len(problem) > 200 {
				t.Errorf("problem is %d bytes long", len(problem))
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in   string
		want string // the prefixes, space-separated; or the error's text
		err  bool
	}{
		{"", "", false},
		{"127.0.0.1", "127.0.0.1/32", false},
		{"127.0.0.1, ::1 10.0.0.0/8,2001:db8::/32", "127.0.0.1/32 ::1/128 10.0.0.0/8 2001:db8::/32", false},
		{"10.1.2.3/8", "10.0.0.0/8", false},
		{"::ffff:192.0.2.1", "192.0.2.1/32", false},
		{",,", "", false},
		{"10.0.0.0/33", `"10.0.0.0/33": not an IP address or CIDR prefix`, true},
		{"proxy.example.com", `"proxy.example.com": not an IP address or CIDR prefix`, true},
		{"fe80::1%eth0", "not an IP address", true},
		{"::ffff:0:0/96", "IPv4-mapped", true},
		{"127.0.0.1;10.0.0.1", "not an IP address", true},
		{strings.Repeat("1", 10000), `"11111111111111111111111111111111111111111111111111..."`, true},
		{strings.Repeat("10.0.0.1,", maxProxies+1), "at most 1024", true},
	}
	for _, tt := range tests {
		got, err := ParseTrustedProxies(tt.in)
		if tt.err {
			if err == nil || !strings.Contains(err.Error(), tt.want) || len(err.Error()) > 100 {
				t.Errorf("ParseTrustedProxies(%.30q) = %v, %v; want error %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if err != nil || strings.Join(s, " ") != tt.want {
			t.Errorf("ParseTrustedProxies(%q) = %v, %v; want %s", tt.in, s, err, tt.want)
		}
	}
}

// Headers count only from a trusted peer; what cannot be used is logged.
func TestClientAddr(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hub := tcpserver.NewHub(tcpserver.HubConfig{}, nil)
	tests := []struct {
		name    string
		proxies []netip.Prefix
		remote  string
		xff     string
		want    string
		log     string
	}{
		{"no proxy trusted", nil, "10.0.0.1:5555", "203.0.113.7", "10.0.0.1:5555", ""},
		{"a peer not trusted", testProxies, "198.51.100.9:5555", "203.0.113.7", "198.51.100.9:5555", ""},
		{"a trusted peer", testProxies, "10.0.0.1:5555", "203.0.113.7", "203.0.113.7", ""},
		{"a trusted IPv6 peer", testProxies, "[2001:db8:ffff::1]:5555", "2001:db8::7", "2001:db8::7", ""},
		{"a trusted peer, mapped", testProxies, "[::ffff:10.0.0.1]:5555", "203.0.113.7", "203.0.113.7", ""},
		{"a trusted peer without the header", testProxies, "10.0.0.1:5555", "", "10.0.0.1:5555", ""},
		{"a trusted peer's garbage", testProxies, "10.0.0.1:5555", "not\x01an address", "10.0.0.1:5555",
			`level=DEBUG msg="forwarded address unusable" peer=10.0.0.1:5555 problem="X-Forwarded-For entry \"not\\x01an address\" names no usable address" using=10.0.0.1`},
		{"a remote address that is not IP", testProxies, "@", "203.0.113.7", "@", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logged.Reset()
			s := New(hub, Config{TrustedProxies: tt.proxies}, log)
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := s.clientAddr(r); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
			if got := strings.TrimSpace(logged.String()); !strings.Contains(got, tt.log) || (tt.log == "") != (got == "") {
				t.Errorf("logged %q, want %q", got, tt.log)
			}
		})
	}
}

// Through the bridge: a trusted proxy's visitor is known by the address
// the proxy forwarded, in the room's notices and in the per-address limit;
// from anyone else the header is ignored.
func TestForwardedAddressThroughTheBridge(t *testing.T) {
	dial := func(t *testing.T, st *stack, xff string) (*wsClient, error) {
		t.Helper()
		w, _, err := st.dialWS(t, "", &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {xff}}})
		return w, err
	}
	t.Run("trusted", func(t *testing.T) {
		st := start(t, tcpserver.HubConfig{ShowAddresses: tcpserver.ShowAddrsAll, MaxPerIP: 1}, Config{TrustedProxies: testProxies})
		tel := st.telnet(t)
		a, err := dial(t, st, "6.6.6.6, 203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		a.expect("Welcome")
		if got := tel.expect("joined"); !strings.Contains(got, "(203.0.113.7) joined") {
			t.Fatalf("telnet member saw %q", got)
		}
		// Another visitor through the same proxy has a place of its own.
		b, err := dial(t, st, "203.0.113.8")
		if err != nil {
			t.Fatal(err)
		}
		b.expect("Welcome")
		if got := tel.expect("joined"); !strings.Contains(got, "(203.0.113.8) joined") {
			t.Fatalf("telnet member saw %q", got)
		}
		// A second connection of the first visitor is over its limit.
		c, err := dial(t, st, "203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		if code, reason := c.closeStatus(); code != websocket.StatusTryAgainLater || !strings.Contains(reason, "too many connections") {
			t.Fatalf("close %v %q", code, reason)
		}
	})
	t.Run("not trusted", func(t *testing.T) {
		st := start(t, tcpserver.HubConfig{ShowAddresses: tcpserver.ShowAddrsAll}, Config{})
		tel := st.telnet(t)
		a, err := dial(t, st, "203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		a.expect("Welcome")
		if got := tel.expect("joined"); !strings.Contains(got, "(127.0.0.1:") {
			t.Fatalf("telnet member saw %q", got)
		}
	})
}

// Whatever a client writes in the headers, the address comes back valid,
// and a client's words to the left of the trusted proxy's entry never beat
// it: appended after any X-Forwarded-For, the proxy's entry wins; after
// any Forwarded, it wins or (quotes the client left open swallowed it)
// the peer stands.
func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range [][2]string{
		{"203.0.113.7", ""}, {"6.6.6.6, 10.0.0.2", "for=6.6.6.6"},
		{"[2001:db8::7]:4711, unknown", `for="[2001:db8::7]:4711";proto=https`},
		{"", `for="6.6.6.6, for=1.1.1.1`}, {",,,", `for=_x;for=1.1.1.1, ;;`},
		{"fe80::1%eth0", `for="\"\\"`},
	} {
		f.Add(s[0], s[1])
	}
	peer := netip.MustParseAddr("10.0.0.1")
	proxy := netip.MustParseAddr("203.0.113.9")
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		valid := func(what string, a netip.Addr) {
			t.Helper()
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() {
				t.Fatalf("%s: %v", what, a)
			}
		}
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		got, _ := forwardedClient(h, peer, testProxies)
		valid("as sent", got)

		got, _ = forwardedClient(http.Header{"X-Forwarded-For": {xff + ", 203.0.113.9"}}, peer, testProxies)
		if got != proxy {
			t.Fatalf("X-Forwarded-For %q then the proxy's: %v", xff, got)
		}
		got, _ = forwardedClient(http.Header{"X-Forwarded-For": {xff, "203.0.113.9"}}, peer, testProxies)
		if got != proxy {
			t.Fatalf("X-Forwarded-For line %q then the proxy's: %v", xff, got)
		}
		got, _ = forwardedClient(http.Header{"Forwarded": {fwd + ", for=203.0.113.9"}}, peer, testProxies)
		if got != proxy && (got != peer || !strings.Contains(fwd, `"`)) {
			t.Fatalf("Forwarded %q then the proxy's: %v", fwd, got)
		}
		got, _ = forwardedClient(http.Header{"Forwarded": {fwd, "for=203.0.113.9"}}, peer, testProxies)
		if got != proxy {
			t.Fatalf("Forwarded line %q then the proxy's: %v", fwd, got)
		}
	})
}

// Each --show-addresses value, end to end: what a telnet member and a
// page (JSON) see of a telnet member's and a web visitor's address.
func TestShowAddressesToBothTransports(t *testing.T) {
	tests := []struct {
		policy          tcpserver.ShowAddrs
		telnetShown     bool // a telnet member's address, to the page
		webVisitorShown bool // a web visitor's, to the telnet member
	}{
		{tcpserver.ShowAddrsTCP, true, false},
		{tcpserver.ShowAddrsAll, true, true},
		{tcpserver.ShowAddrsNone, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			st := start(t, tcpserver.HubConfig{ShowAddresses: tt.policy}, Config{})
			page := st.jsonClient(t, "nick=jay")
			tel := st.telnet(t)
			if addr := joinAddr(page, tel.name); (addr != "") != tt.telnetShown || (tt.telnetShown && !strings.HasPrefix(addr, "127.0.0.1:")) {
				t.Errorf("the page saw the telnet member's addr %q, shown should be %v", addr, tt.telnetShown)
			}
			st.plain(t, "nick=webby")
			want := "webby joined"
			if tt.webVisitorShown {
				want = "webby (127.0.0.1:"
			}
			if line := tel.expect("webby"); !strings.Contains(line, want) || !strings.HasSuffix(line, "joined") {
				t.Errorf("the telnet member saw %q, want %q in it", line, want)
			}
			if addr := joinAddr(page, "webby"); (addr != "") != tt.webVisitorShown {
				t.Errorf("the page saw the web visitor's addr %q, shown should be %v", addr, tt.webVisitorShown)
			}
		})
	}
}

// joinAddr reads a JSON client's frames until the join event of name, and
// returns its addr.
func joinAddr(w *wsClient, name string) string {
	w.t.Helper()
	for range 100 {
		f := w.read()
		var evs []struct{ Type, From, Addr string }
		if !strings.HasPrefix(f, "[") {
			f = "[" + f + "]"
		}
		if err := json.Unmarshal([]byte(f), &evs); err != nil {
			w.t.Fatalf("%v in %q", err, f)
		}
		for _, ev := range evs {
			if ev.Type == "join" && ev.From == name {
				return ev.Addr
			}
		}
	}
	w.t.Fatalf("no join of %s", name)
	return ""
}
