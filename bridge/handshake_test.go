package bridge

import (
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// The subprotocol is agreed whatever its case (the library compares
// without it), and the bridge then speaks what was agreed: JSON.
func TestSubprotocolInAnyCaseSpeaksJSON(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	for _, proto := range []string{"CHATBRIDGE.V1.JSON", "ChatBridge.v1.Json"} {
		w, _, err := st.dialWS(t, "", &websocket.DialOptions{Subprotocols: []string{proto}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(w.c.Subprotocol(), JSONProtocol) {
			t.Fatalf("asked %q, agreed %q", proto, w.c.Subprotocol())
		}
		if hello := w.event(); hello.Type != "hello" {
			t.Fatalf("asked %q: first event %+v", proto, hello)
		}
	}
}

// An Origin whose host has an empty label is refused before the upgrade,
// whatever the patterns: "*.example.com" must not let ".example.com" or
// "a..example.com" in (path.Match lets * match an empty label, and a dot).
func TestOriginWithAnEmptyLabelIsRefused(t *testing.T) {
	for _, tc := range []struct {
		allow  []string
		origin string
		ok     bool
	}{
		{[]string{"*.example.com"}, "https://docs.example.com", true},
		{[]string{"*.example.com"}, "http://.example.com", false},
		{[]string{"*.example.com"}, "http://a..example.com", false},
		{[]string{"*.example.com"}, "http://x.example.com.", false},
		{[]string{"*"}, "http://.evil", false},
		{[]string{"*"}, "http://evil..", false},
		{[]string{"*"}, "http://evil", true},
		{[]string{"http://*.example.com"}, "http://.example.com", false},
		{nil, "http://.", false},
	} {
		st := start(t, tcpserver.HubConfig{}, Config{AllowOrigins: tc.allow})
		before := st.bridge.handshakeFailures.Load()
		_, resp := st.handshake(t, "", nil, "Origin: "+tc.origin)
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusSwitchingProtocols; got != tc.ok {
			t.Errorf("allow %q, Origin %q: %s", tc.allow, tc.origin, resp.Status)
			continue
		}
		if !tc.ok {
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("allow %q, Origin %q: %s, want 403", tc.allow, tc.origin, resp.Status)
			}
			if st.bridge.handshakeFailures.Load() != before+1 {
				t.Errorf("Origin %q: refusal not counted", tc.origin)
			}
		}
	}
}

// Every answer, whatever its path, method and status, carries a
// Content-Security-Policy and nosniff; a method a path does not serve gets
// 405 with the methods it does serve in Allow.
func TestEveryAnswerHasHeadersAndWrongMethodsGet405(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{AllowOrigins: []string{"*.example.com"}})
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
	with := func(h map[string]string, k, v string) map[string]string {
		m := maps.Clone(h)
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		status       int
		allow        string // "" for none
	}{
		{"GET", "/", nil, 200, ""},
		{"GET", "/embed", nil, 200, ""},
		{"GET", "/app.js", nil, 200, ""},
		{"HEAD", "/", nil, 200, ""},
		{"GET", "/nope", nil, 404, ""},
		{"POST", "/nope", nil, 404, ""},
		{"GET", "/healthz", nil, 200, ""},
		{"HEAD", "/healthz", nil, 200, ""},
		{"GET", "/metrics", nil, 200, ""},
		{"GET", "/ws", nil, 426, ""},
		{"GET", "/ws", with(upgrade, "Sec-WebSocket-Version", "8"), 400, ""},
		{"GET", "/ws", with(upgrade, "Origin", "https://evil.example"), 403, ""},
		{"GET", "/ws", with(upgrade, "Origin", "https://.example.com"), 403, ""},
		{"POST", "/", nil, 405, "GET, HEAD"},
		{"DELETE", "/embed.js", nil, 405, "GET, HEAD"},
		{"PUT", "/healthz", nil, 405, "GET, HEAD"},
		{"POST", "/healthz", nil, 405, "GET, HEAD"},
		{"POST", "/metrics", nil, 405, "GET, HEAD"},
		{"POST", "/ws", nil, 405, "GET"},
		{"HEAD", "/ws", nil, 405, "GET"},
		{"OPTIONS", "/ws", upgrade, 405, "GET"},
		{"BREW", "/ws", nil, 405, "GET"},
		{"BREW", "/", nil, 405, "GET, HEAD"},
	} {
		req, err := http.NewRequest(tc.method, st.httpURL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		what := tc.method + " " + tc.path
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", what, resp.StatusCode, tc.status)
		}
		if got := strings.Join(resp.Header.Values("Allow"), ", "); got != tc.allow {
			t.Errorf("%s: Allow %q, want %q", what, got, tc.allow)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src") || !strings.Contains(csp, "frame-ancestors") {
			t.Errorf("%s: Content-Security-Policy %q", what, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", what)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}
