package bridge

import (
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
