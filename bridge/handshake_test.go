package bridge

import (
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
